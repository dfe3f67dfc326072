using Microsoft.ML.OnnxRuntime;
using Onnx;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>The range an activation is quantised over.</summary>
internal readonly record struct ActivationRange(float Min, float Max);

/// <summary>How an activation's range is chosen from the calibration images.</summary>
public enum CalibrationMethod
{
    /// <summary>The smallest and largest value seen.</summary>
    MinMax,

    /// <summary>The range (a fraction of the min/max one) that minimises the mean squared quantisation error of the values seen.</summary>
    MinimumError,

    /// <summary>The 0.01th to the 99.99th percentile of the values seen (a few outliers do not stretch the range).</summary>
    Percentile,
}

/// <summary>
/// Measures the range of every tensor a plan quantises: the calibration graph (<see cref="CalibrationGraph"/>: the
/// float graph cut down to those tensors and the features, with the tensors as outputs) runs in ONNX Runtime over
/// preprocessed calibration images; <see cref="CalibrationStatistics"/> tracks each tensor's min/max and keeps a
/// fixed-stride sample of its values for <see cref="CalibrationMethod.MinimumError"/> and <see cref="CalibrationMethod.Percentile"/>.
/// The same graph runs during head mode's feature pass (<see cref="FeaturePassCalibration"/>), so the ranges can be
/// collected there instead, from the same values.
/// </summary>
internal static class ActivationCalibrator
{
    /// <summary>Values sampled per tensor (over all images) for the error search.</summary>
    internal const int SampleSize = 1 << 16;

    /// <summary>Images per run: fewer runs of the graph, at a bounded memory (every quantised tensor of each image is an output).</summary>
    internal const int BatchSize = 8;

    /// <summary>The ranges of <paramref name="tensors"/> of the (BatchNorm-folded) <paramref name="model"/> over <paramref name="inputs"/>.</summary>
    public static Dictionary<string, ActivationRange> Calibrate(ModelProto model, IReadOnlyList<string> tensors, IReadOnlyList<float[]> inputs, int inputSize, CalibrationMethod method) =>
        Calibrate(new CalibrationGraph(model, tensors), inputs, inputSize, method);

    public static Dictionary<string, ActivationRange> Calibrate(CalibrationGraph graph, IReadOnlyList<float[]> inputs, int inputSize, CalibrationMethod method)
    {
        using var session = graph.OpenSession();
        var statistics = new CalibrationStatistics(graph.Tensors, inputs.Count);
        var imageLength = 3 * inputSize * inputSize;
        for (var start = 0; start < inputs.Count; start += BatchSize)
        {
            var count = Math.Min(BatchSize, inputs.Count - start);
            var batch = new float[count * imageLength];
            for (var i = 0; i < count; i++)
            {
                inputs[start + i].AsSpan(0, imageLength).CopyTo(batch.AsSpan(i * imageLength));
            }
            Run(session, graph, batch, [.. Enumerable.Range(start, count)], inputSize, statistics, features: null);
        }
        return statistics.Ranges(method);
    }

    /// <summary>
    /// Runs <paramref name="graph"/> over images (<paramref name="slots"/>: each one's place in the calibration sample), at most
    /// <see cref="BatchSize"/> at a time, adding their values to <paramref name="statistics"/> and, when
    /// <paramref name="features"/> is given, writing their pooled features there (a row per image).
    /// </summary>
    internal static void Run(InferenceSession session, CalibrationGraph graph, ReadOnlySpan<float> inputs, int[] slots, int inputSize, CalibrationStatistics statistics, float[]? features)
    {
        var imageLength = 3 * inputSize * inputSize;
        string[] names = features is null ? [.. graph.Tensors] : [.. graph.Tensors, OnnxGraphNames.Features];
        using var runOptions = new RunOptions();
        for (var start = 0; start < slots.Length; start += BatchSize)
        {
            var count = Math.Min(BatchSize, slots.Length - start);
            var batch = inputs.Slice(start * imageLength, count * imageLength).ToArray();
            using var value = OrtValue.CreateTensorValueFromMemory(batch, [count, 3, inputSize, inputSize]);
            using var results = session.Run(runOptions, [OnnxGraphNames.Input], [value], names);
            statistics.Add(results, slots.AsSpan(start, count));
            if (features is not null)
            {
                var rows = results[names.Length - 1].GetTensorDataAsSpan<float>();
                rows.CopyTo(features.AsSpan(start * (rows.Length / count)));
            }
        }
    }

    /// <summary>[the (100 - p)th percentile, the p-th percentile] of the sample, within [min, max] and holding 0.</summary>
    internal static ActivationRange PercentileRange(ActivationRange full, List<float> sample, double percentile)
    {
        if (!(full.Max > full.Min) || sample.Count == 0)
        {
            return full;
        }
        var sorted = sample.ToArray();
        Array.Sort(sorted);
        float At(double p) => sorted[Math.Clamp((int)Math.Round(p / 100 * (sorted.Length - 1)), 0, sorted.Length - 1)];
        return new ActivationRange(Math.Clamp(MathF.Min(At(100 - percentile), 0), full.Min, 0), Math.Clamp(MathF.Max(At(percentile), 0), 0, full.Max));
    }

    /// <summary>Shrinks [min, max] by the factor (of 100 candidates down to 10 %) that gives the least mean squared uint8 quantisation error on the sample.</summary>
    internal static ActivationRange LeastErrorRange(ActivationRange full, List<float> sample)
    {
        if (!(full.Max > full.Min) || sample.Count == 0)
        {
            return full;
        }
        var best = full;
        var bestError = double.PositiveInfinity;
        for (var step = 100; step >= 10; step--)
        {
            var candidate = new ActivationRange(full.Min * step / 100f, full.Max * step / 100f);
            var (scale, zeroPoint) = QdqRewriter.ActivationParameters(candidate);
            var error = 0.0;
            foreach (var v in sample)
            {
                var q = Math.Clamp(MathF.Round(v / scale) + zeroPoint, 0, 255);
                var d = ((q - zeroPoint) * scale) - v;
                error += d * d;
            }
            if (error < bestError)
            {
                bestError = error;
                best = candidate;
            }
        }
        return best;
    }
}
