namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// Runs a model on preprocessed input. Two engines implement it: TorchSharp (training, evaluation
/// during training, the parity reference) and ONNX Runtime (serving). Implementations are safe for
/// concurrent callers.
/// </summary>
public interface IClassifierEngine : IDisposable
{
    /// <summary>Short engine name for logs and results, e.g. <c>torchsharp</c> or <c>onnxruntime</c>.</summary>
    string Name { get; }

    int NumClasses { get; }

    /// <summary>Side of the square input the engine expects.</summary>
    int InputSize { get; }

    /// <summary>
    /// Class probabilities (softmax) for a batch: <paramref name="input"/> holds <paramref name="batchSize"/>
    /// CHW images of 3 x InputSize x InputSize floats, already preprocessed; the result holds
    /// batchSize x NumClasses probabilities, row by row.
    /// </summary>
    float[] PredictProbabilities(ReadOnlySpan<float> input, int batchSize);

    /// <summary>
    /// The probabilities and, when <paramref name="withFeatures"/> and the engine can, the features the head
    /// read (batchSize x feature width, row by row) from the same forward pass; null features otherwise.
    /// </summary>
    (float[] Probabilities, float[]? Features) Predict(ReadOnlySpan<float> input, int batchSize, bool withFeatures) =>
        (PredictProbabilities(input, batchSize), null);
}

/// <summary>A label and its probability.</summary>
public sealed record LabelProbability(string Label, double Probability);

/// <summary>Picks the most probable labels from a row of probabilities.</summary>
public static class TopK
{
    public static IReadOnlyList<LabelProbability> Select(ReadOnlySpan<float> probabilities, IReadOnlyList<string> labels, int k)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (probabilities.Length != labels.Count)
        {
            throw new ArgumentException($"{probabilities.Length} probabilities for {labels.Count} labels.", nameof(probabilities));
        }
        var order = new int[probabilities.Length];
        for (var i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }
        var values = probabilities.ToArray();
        // Stable: equal probabilities keep label order, so results are deterministic.
        var ranked = order.OrderByDescending(i => values[i]).ThenBy(i => i).Take(Math.Clamp(k, 1, labels.Count));
        return [.. ranked.Select(i => new LabelProbability(labels[i], values[i]))];
    }
}
