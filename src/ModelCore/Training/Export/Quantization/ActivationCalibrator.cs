using System.Numerics.Tensors;
using Google.Protobuf;
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
/// Measures the range of every tensor a plan quantises: the float graph, with those tensors added as outputs, runs
/// in ONNX Runtime over preprocessed calibration images; each tensor's min/max is tracked and a fixed-stride
/// sample of its values kept for <see cref="CalibrationMethod.MinimumError"/> and <see cref="CalibrationMethod.Percentile"/>.
/// </summary>
internal static class ActivationCalibrator
{
    /// <summary>Values sampled per tensor (over all images) for the error search.</summary>
    private const int SampleSize = 1 << 16;

    /// <summary>Images per run: fewer runs of the graph, at a bounded memory (every quantised tensor of each image is an output).</summary>
    private const int BatchSize = 8;

    public static Dictionary<string, ActivationRange> Calibrate(ModelProto model, IReadOnlyList<string> tensors, IReadOnlyList<float[]> inputs, int inputSize, CalibrationMethod method)
    {
        var probe = model.Clone();
        var outputs = probe.Graph.Output.Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var tensor in tensors.Where(t => !outputs.Contains(t)))
        {
            probe.Graph.Output.Add(new ValueInfoProto
            {
                Name = tensor,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        }
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC, IntraOpNumThreads = Environment.ProcessorCount };
        using var session = new InferenceSession(probe.ToByteArray(), options);
        using var runOptions = new RunOptions();
        var names = tensors.ToArray();
        var min = Enumerable.Repeat(float.PositiveInfinity, names.Length).ToArray();
        var max = Enumerable.Repeat(float.NegativeInfinity, names.Length).ToArray();
        var samples = names.Select(_ => new List<float>()).ToArray();
        var imageLength = 3 * inputSize * inputSize;
        for (var start = 0; start < inputs.Count; start += BatchSize)
        {
            var count = Math.Min(BatchSize, inputs.Count - start);
            var batch = new float[count * imageLength];
            for (var i = 0; i < count; i++)
            {
                inputs[start + i].AsSpan(0, imageLength).CopyTo(batch.AsSpan(i * imageLength));
            }
            using var value = OrtValue.CreateTensorValueFromMemory(batch, [count, 3, inputSize, inputSize]);
            using var results = session.Run(runOptions, [OnnxGraphNames.Input], [value], names);
            for (var t = 0; t < names.Length; t++)
            {
                var data = results[t].GetTensorDataAsSpan<float>();
                min[t] = MathF.Min(min[t], TensorPrimitives.Min(data));
                max[t] = MathF.Max(max[t], TensorPrimitives.Max(data));
                // Each image's values at a fixed stride from its first: the same sample whatever the batch.
                var perImage = data.Length / count;
                var stride = Math.Max(1, (int)((long)perImage * inputs.Count / SampleSize));
                for (var i = 0; i < count; i++)
                {
                    var image = data.Slice(i * perImage, perImage);
                    for (var j = 0; j < image.Length; j += stride)
                    {
                        samples[t].Add(image[j]);
                    }
                }
            }
        }
        var chosen = new ActivationRange[names.Length];
        Parallel.For(0, names.Length, t =>
        {
            var full = new ActivationRange(MathF.Min(min[t], 0), MathF.Max(max[t], 0));
            chosen[t] = method switch
            {
                CalibrationMethod.MinimumError => LeastErrorRange(full, samples[t]),
                CalibrationMethod.Percentile => PercentileRange(full, samples[t], 99.99),
                _ => full,
            };
        });
        return names.Select((n, t) => (n, t)).ToDictionary(p => p.n, p => chosen[p.t], StringComparer.Ordinal);
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
