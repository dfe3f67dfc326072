using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// Which convolutions an int8 graph should keep in float, by measurement rather than a fixed list: on a few calibration
/// images, the relative feature error of the graph with every convolution quantised (but those already float), then of
/// the same graph with one convolution at a time left in float (leave one out). A convolution whose float copy removes a
/// large share of the error (<see cref="MinShare"/>) is one whose quantisation costs the most agreement; the largest of
/// those stay float. Each graph is run as served (ONNX Runtime's integer kernels on this CPU), so what the kernels do with
/// the weights' range is part of what is measured.
/// </summary>
internal static class LayerSensitivity
{
    /// <summary>A convolution stays float only when leaving it float removes at least this share of the error.</summary>
    public const double MinShare = 0.1;

    /// <summary>Convolutions measured at most (deep graphs: those whose weights lose the most to quantisation).</summary>
    public const int MaxCandidates = 32;

    /// <param name="model">The BatchNorm-folded float graph (not changed).</param>
    /// <param name="alwaysFloat">Convolutions (output names) float whatever the measurement (the stem).</param>
    /// <param name="ranges">The calibrated activation ranges of every tensor the full plan quantises.</param>
    /// <param name="weightLevels">Largest quantised weight magnitude.</param>
    /// <param name="inputs">Preprocessed calibration images to measure on.</param>
    /// <param name="inputSize">Their side in pixels.</param>
    /// <param name="max">Convolutions chosen at most.</param>
    /// <returns>The chosen convolutions, the most costly first.</returns>
    public static List<FloatLayer> Choose(ModelProto model, IReadOnlySet<string> alwaysFloat, IReadOnlyDictionary<string, ActivationRange> ranges, int weightLevels,
        IReadOnlyList<float[]> inputs, int inputSize, int max)
    {
        if (inputs.Count == 0 || max <= 0)
        {
            return [];
        }
        var batch = inputs.SelectMany(i => i).ToArray();
        var reference = Features(model.ToByteArray(), batch, inputs.Count, inputSize);
        double Error(IReadOnlySet<string> floatConvs)
        {
            var clone = model.Clone();
            var plan = QdqPlan.Build(clone.Graph, floatConvs);
            QdqRewriter.Apply(clone.Graph, plan, ranges, weightLevels);
            var features = Features(clone.ToByteArray(), batch, inputs.Count, inputSize);
            double difference = 0, norm = 0;
            for (var i = 0; i < features.Length; i++)
            {
                difference += (features[i] - reference[i]) * (double)(features[i] - reference[i]);
                norm += reference[i] * (double)reference[i];
            }
            return norm > 0 ? difference / norm : 0;
        }
        var all = Error(alwaysFloat);
        if (all <= 0)
        {
            return [];
        }
        var candidates = Candidates(model, alwaysFloat, weightLevels);
        var measured = new List<FloatLayer>();
        foreach (var conv in candidates)
        {
            measured.Add(new FloatLayer(conv, all, Error(new HashSet<string>(alwaysFloat.Append(conv), StringComparer.Ordinal))));
        }
        return [.. measured.Where(l => l.ErrorShare >= MinShare).OrderByDescending(l => l.ErrorShare).Take(max)];
    }

    /// <summary>The quantised convolutions (output names), at most <see cref="MaxCandidates"/>: those with the largest relative weight rounding error.</summary>
    private static List<string> Candidates(ModelProto model, IReadOnlySet<string> alwaysFloat, int weightLevels)
    {
        var convolutions = QdqPlan.Build(model.Graph, alwaysFloat).Convolutions;
        if (convolutions.Count <= MaxCandidates)
        {
            return [.. convolutions.Select(c => c.Output[0])];
        }
        var initializers = GraphTensors.Initializers(model.Graph);
        double RoundingError(NodeProto conv)
        {
            var tensor = initializers[conv.Input[1]];
            var weights = GraphTensors.Floats(tensor);
            var channels = (int)tensor.Dims[0];
            var perChannel = weights.Length / channels;
            double error = 0, norm = 0;
            for (var c = 0; c < channels; c++)
            {
                var row = weights.AsSpan(c * perChannel, perChannel);
                var largest = 0f;
                foreach (var w in row)
                {
                    largest = Math.Max(largest, Math.Abs(w));
                }
                var scale = largest > 0 ? largest / weightLevels : 1f;
                foreach (var w in row)
                {
                    var d = (Math.Round(w / scale) * scale) - w;
                    error += d * d;
                    norm += w * (double)w;
                }
            }
            return norm > 0 ? error / norm : 0;
        }
        return [.. convolutions.OrderByDescending(RoundingError).Take(MaxCandidates).Select(c => c.Output[0])];
    }

    /// <summary>The graph's features of a batch, as ONNX Runtime serves it (all optimisations: the integer kernels).</summary>
    private static float[] Features(byte[] onnx, float[] batch, int count, int inputSize)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = Environment.ProcessorCount };
        using var session = new InferenceSession(onnx, options);
        using var runOptions = new RunOptions();
        using var value = OrtValue.CreateTensorValueFromMemory(batch, [count, 3, inputSize, inputSize]);
        using var results = session.Run(runOptions, [OnnxGraphNames.Input], [value], [OnnxGraphNames.Features]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
