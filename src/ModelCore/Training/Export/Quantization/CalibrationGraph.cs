using System.Numerics.Tensors;
using System.Security.Cryptography;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// The float graph an int8 graph is calibrated on: the BatchNorm-folded graph, its quantisation plan, and the probe
/// ONNX Runtime runs: only the nodes the quantised tensors and the pooled features depend on (the head, softmax and
/// activation map are cut away), with those tensors as its outputs. The probe depends on the backbone alone, so two
/// exports of one backbone with different heads give the same probe, byte for byte (<see cref="Key"/>): that is what
/// lets the feature pass's calibration (<see cref="FeaturePassCalibration"/>) stand for the int8 step's.
/// </summary>
internal sealed class CalibrationGraph
{
    /// <summary>The probe of <paramref name="model"/> (BatchNorm already folded) for <paramref name="tensors"/>.</summary>
    public CalibrationGraph(ModelProto model, IReadOnlyList<string> tensors)
    {
        Folded = model;
        Tensors = tensors;
        Probe = BuildProbe(model, tensors);
        Key = Convert.ToHexString(SHA256.HashData(Probe));
    }

    /// <summary>The BatchNorm-folded float graph (the int8 rewrite starts from a copy of it).</summary>
    public ModelProto Folded { get; }

    /// <summary>The tensors calibrated, in graph order.</summary>
    public IReadOnlyList<string> Tensors { get; }

    /// <summary>The serialised probe.</summary>
    public byte[] Probe { get; }

    /// <summary>SHA-256 of <see cref="Probe"/>, in hex.</summary>
    public string Key { get; }

    /// <summary>
    /// Folds <paramref name="fp32Onnx"/>'s BatchNorms and plans its quantisation with the stem in float or not
    /// (<see cref="Int8QuantizerOptions.FloatStem"/>); further float layers are decided after calibration.
    /// </summary>
    public static CalibrationGraph Build(byte[] fp32Onnx, bool floatStem)
    {
        var model = ModelProto.Parser.ParseFrom(fp32Onnx);
        BatchNormFolding.Fold(model.Graph);
        return new CalibrationGraph(model, QdqPlan.Build(model.Graph, floatStem).Quantized);
    }

    /// <summary>The convolutions (by output) that stay float before any sensitivity search: the stem, when it does.</summary>
    public static HashSet<string> FloatStem(ModelProto model, bool floatStem) =>
        floatStem && model.Graph.Node.FirstOrDefault(n => n.OpType == "Conv") is { } first
            ? new HashSet<string>([first.Output[0]], StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);

    /// <summary>A session on the probe: basic graph optimisations (no layout changes), every core.</summary>
    public InferenceSession OpenSession()
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_BASIC, IntraOpNumThreads = Environment.ProcessorCount };
        return new InferenceSession(Probe, options);
    }

    private static byte[] BuildProbe(ModelProto model, IReadOnlyList<string> tensors)
    {
        var probe = model.Clone();
        var graph = probe.Graph;
        var features = graph.Output.FirstOrDefault(o => o.Name == OnnxGraphNames.Features);
        var producers = new Dictionary<string, NodeProto>(StringComparer.Ordinal);
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output)
            {
                producers[output] = node;
            }
        }
        var kept = new HashSet<NodeProto>(ReferenceEqualityComparer.Instance);
        var pending = new Stack<string>(features is null ? tensors : [.. tensors, features.Name]);
        while (pending.TryPop(out var tensor))
        {
            if (producers.TryGetValue(tensor, out var node) && kept.Add(node))
            {
                foreach (var input in node.Input)
                {
                    pending.Push(input);
                }
            }
        }
        foreach (var node in graph.Node.Where(n => !kept.Contains(n)).ToList())
        {
            graph.Node.Remove(node);
        }
        var produced = graph.Node.SelectMany(n => n.Output).ToHashSet(StringComparer.Ordinal);
        foreach (var info in graph.ValueInfo.Where(v => !produced.Contains(v.Name)).ToList())
        {
            graph.ValueInfo.Remove(info);
        }
        graph.Output.Clear();
        foreach (var tensor in tensors)
        {
            graph.Output.Add(new ValueInfoProto
            {
                Name = tensor,
                Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float } },
            });
        }
        if (features is not null)
        {
            graph.Output.Add(features);
        }
        BatchNormFolding.RemoveUnusedInitializers(graph);
        // Nothing that describes the whole model (a producer version, say) may tell two probes of one backbone apart.
        probe.MetadataProps.Clear();
        probe.DocString = "";
        probe.ProducerVersion = "";
        return probe.ToByteArray();
    }
}

/// <summary>
/// What calibration keeps of each quantised tensor over a fixed sample of images: its min and max, and each image's
/// values at a fixed stride (<see cref="ActivationCalibrator.SampleSize"/> values per tensor over the sample). Images can
/// come in any order and grouping, each with its place in the sample; the samples are joined in that place's order, so
/// the ranges are those one pass over the sample in order gives.
/// </summary>
internal sealed class CalibrationStatistics
{
    private readonly string[] names;
    private readonly float[] min;
    private readonly float[] max;
    private readonly List<float>?[][] samples;
    private readonly bool[] seen;

    public CalibrationStatistics(IReadOnlyList<string> tensors, int images)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(images, 1);
        names = [.. tensors];
        Images = images;
        min = Enumerable.Repeat(float.PositiveInfinity, names.Length).ToArray();
        max = Enumerable.Repeat(float.NegativeInfinity, names.Length).ToArray();
        samples = [.. names.Select(_ => new List<float>?[images])];
        seen = new bool[images];
    }

    /// <summary>The images in the sample.</summary>
    public int Images { get; }

    /// <summary>Images added so far.</summary>
    public int Added { get; private set; }

    /// <summary>Whether <paramref name="slot"/> (an image's place in the sample) was added.</summary>
    public bool Has(int slot) => seen[slot];

    /// <summary>A run's outputs: the tensors in order (a batch of <paramref name="slots"/>.Length images each), then anything else.</summary>
    public void Add(IReadOnlyList<OrtValue> results, ReadOnlySpan<int> slots)
    {
        foreach (var slot in slots)
        {
            if (seen[slot])
            {
                throw new InvalidOperationException($"Calibration image {slot} was added twice.");
            }
            seen[slot] = true;
        }
        Added += slots.Length;
        for (var t = 0; t < names.Length; t++)
        {
            var data = results[t].GetTensorDataAsSpan<float>();
            min[t] = MathF.Min(min[t], TensorPrimitives.Min(data));
            max[t] = MathF.Max(max[t], TensorPrimitives.Max(data));
            // Each image's values at a fixed stride from its first: the same sample whatever the batch.
            var perImage = data.Length / slots.Length;
            var stride = Math.Max(1, (int)((long)perImage * Images / ActivationCalibrator.SampleSize));
            for (var i = 0; i < slots.Length; i++)
            {
                var image = data.Slice(i * perImage, perImage);
                var sample = new List<float>((perImage + stride - 1) / stride);
                for (var j = 0; j < image.Length; j += stride)
                {
                    sample.Add(image[j]);
                }
                samples[t][slots[i]] = sample;
            }
        }
    }

    /// <summary>Each tensor's range by <paramref name="method"/>, once every image of the sample was added.</summary>
    public Dictionary<string, ActivationRange> Ranges(CalibrationMethod method)
    {
        if (Added != Images)
        {
            throw new InvalidOperationException($"Calibration saw {Added} of its {Images} images.");
        }
        var chosen = new ActivationRange[names.Length];
        Parallel.For(0, names.Length, t =>
        {
            var full = new ActivationRange(MathF.Min(min[t], 0), MathF.Max(max[t], 0));
            var sample = new List<float>(samples[t].Sum(s => s!.Count));
            foreach (var image in samples[t])
            {
                sample.AddRange(image!);
            }
            chosen[t] = method switch
            {
                CalibrationMethod.MinimumError => ActivationCalibrator.LeastErrorRange(full, sample),
                CalibrationMethod.Percentile => ActivationCalibrator.PercentileRange(full, sample, 99.99),
                _ => full,
            };
        });
        return names.Select((n, t) => (n, t)).ToDictionary(p => p.n, p => chosen[p.t], StringComparer.Ordinal);
    }
}
