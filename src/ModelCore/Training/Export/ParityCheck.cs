using ServerlessClassifier.ModelCore.Engine;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Export;

/// <summary>
/// The one check that ONNX Runtime computes what TorchSharp computes, wherever training runs part of the network on the
/// serving engine (the frozen backbone's features, a fine-tune's frozen prefix) or reads what it computed earlier (stored
/// features): the largest difference over the first images, relative to TorchSharp's largest value, must be at most
/// <see cref="Tolerance"/>, else training stops (<see cref="TrainingException"/>). The export's own check of the served
/// probabilities is <see cref="OnnxExport.Verify"/>.
/// </summary>
internal static class ParityCheck
{
    /// <summary>Largest relative difference accepted.</summary>
    public const double Tolerance = 1e-4;

    /// <summary>Images of the first batch compared.</summary>
    public const int Images = 4;

    /// <summary>
    /// Runs <paramref name="reference"/> (TorchSharp, in inference mode) on the first <paramref name="count"/> inputs
    /// (preprocessed images, N x 3 x S x S) and compares its outputs with <paramref name="onnx"/> (the same images'
    /// outputs, flattened in the same order). Returns the relative difference.
    /// </summary>
    /// <param name="what">What differs from what, for the message: "The serving engine's backbone features differ from TorchSharp's".</param>
    /// <param name="consequence">What is refused, for the message: "refusing to train".</param>
    /// <exception cref="TrainingException">The difference is above <see cref="Tolerance"/> (or not a number).</exception>
    public static double Require(Func<Tensor, Tensor> reference, float[] inputs, ReadOnlySpan<float> onnx, int count, int inputSize, string what, string consequence)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(inputs);
        float[] expected;
        using (inference_mode())
        using (var scope = NewDisposeScope())
        {
            var batch = tensor(inputs.AsSpan(0, count * 3 * inputSize * inputSize).ToArray(), [count, 3, inputSize, inputSize]);
            expected = reference(batch).flatten().data<float>().ToArray();
        }
        double scale = 0, worst = 0;
        for (var i = 0; i < expected.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(expected[i]));
            worst = Math.Max(worst, Math.Abs(expected[i] - onnx[i]));
        }
        var relative = worst / Math.Max(scale, 1e-12);
        return relative <= Tolerance
            ? relative
            : throw new TrainingException(
                $"{what}: max |difference| {worst:E2} is {relative:E2} of the largest value, above {Tolerance:E0}, on {count} images; {consequence}.");
    }
}
