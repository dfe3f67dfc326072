using Onnx;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// Which tensors of a (BatchNorm-folded) float graph are quantised, decided from its structure: every activation a
/// Conv or Add reads or writes, and MaxPool's input and output. A Relu that is the only reader of a Conv's or an Add's
/// output is absorbed: the quantised tensor is the Relu's output, whose range starts at 0, so its zero point is 0 and
/// quantising clamps exactly as the Relu did (ONNX Runtime then runs Conv+Relu as one integer kernel).
/// </summary>
internal sealed class QdqPlan
{
    private QdqPlan(List<string> quantized, Dictionary<string, string> inherited, List<NodeProto> absorbedRelus, List<NodeProto> convolutions)
    {
        Convolutions = convolutions;
        Quantized = quantized;
        Inherited = inherited;
        AbsorbedRelus = absorbedRelus;
    }

    /// <summary>Tensors quantised with their own calibrated range, in graph order.</summary>
    public IReadOnlyList<string> Quantized { get; }

    /// <summary>Tensors quantised with another tensor's parameters (MaxPool output = its input, so it runs on uint8 as is).</summary>
    public IReadOnlyDictionary<string, string> Inherited { get; }

    /// <summary>The Conv nodes that run in int8 (their weights and bias are quantised).</summary>
    public IReadOnlyList<NodeProto> Convolutions { get; }

    /// <summary>Relu nodes whose clamping the following quantisation performs.</summary>
    public IReadOnlyList<NodeProto> AbsorbedRelus { get; }

    /// <summary>The plan with the first convolution (the stem) in float, or none.</summary>
    public static QdqPlan Build(GraphProto graph, bool floatStem) =>
        Build(graph, floatStem && graph.Node.FirstOrDefault(n => n.OpType == "Conv") is { } first
            ? new HashSet<string>([first.Output[0]], StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal));

    /// <param name="graph">The BatchNorm-folded float graph.</param>
    /// <param name="floatConvs">Convolutions (by their output tensor's name) that stay float: their input and weights are not quantised.</param>
    public static QdqPlan Build(GraphProto graph, IReadOnlySet<string> floatConvs)
    {
        var readers = graph.Node.SelectMany(n => n.Input.Select(i => (Tensor: i, Node: n)))
            .GroupBy(p => p.Tensor, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(p => p.Node).ToList(), StringComparer.Ordinal);
        var initializers = graph.Initializer.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
        var quantized = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var inherited = new Dictionary<string, string>(StringComparer.Ordinal);
        var relus = new List<NodeProto>();
        var convolutions = new List<NodeProto>();
        void Quantize(string tensor)
        {
            if (!initializers.Contains(tensor) && !inherited.ContainsKey(tensor) && seen.Add(tensor))
            {
                quantized.Add(tensor);
            }
        }
        foreach (var node in graph.Node)
        {
            switch (node.OpType)
            {
                case "Conv" when floatConvs.Contains(node.Output[0]):
                    Quantize(OutputAfterRelu(node, readers, relus));
                    break;
                case "Conv" when initializers.Contains(node.Input[1]):
                    convolutions.Add(node);
                    Quantize(node.Input[0]);
                    Quantize(OutputAfterRelu(node, readers, relus));
                    break;
                case "Add":
                    Quantize(node.Input[0]);
                    Quantize(node.Input[1]);
                    Quantize(OutputAfterRelu(node, readers, relus));
                    break;
                case "MaxPool":
                    Quantize(node.Input[0]);
                    inherited[node.Output[0]] = inherited.TryGetValue(node.Input[0], out var root) ? root : node.Input[0];
                    break;
            }
        }
        return new QdqPlan(quantized, inherited, relus, convolutions);
    }

    private static string OutputAfterRelu(NodeProto node, Dictionary<string, List<NodeProto>> readers, List<NodeProto> relus)
    {
        var output = node.Output[0];
        if (readers.TryGetValue(output, out var next) && next is [{ OpType: "Relu" } relu])
        {
            relus.Add(relu);
            return relu.Output[0];
        }
        return output;
    }
}
