using Onnx;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// Rewrites a BatchNorm-folded float graph into ONNX's QDQ form: after every tensor the plan quantises, a
/// QuantizeLinear (uint8, asymmetric, from its calibrated range) and a DequantizeLinear that its readers read
/// instead; every Conv weight as int8 (symmetric, one scale per output channel) and its bias as int32 at the
/// scale input x weight, each behind a DequantizeLinear. ONNX Runtime fuses DequantizeLinear -> Conv ->
/// QuantizeLinear into one integer convolution (and the same for Add); what the plan leaves alone (pooling,
/// the head, softmax) stays float.
/// </summary>
internal static class QdqRewriter
{
    public static void Apply(GraphProto graph, QdqPlan plan, IReadOnlyDictionary<string, ActivationRange> ranges, int weightLevels)
    {
        // Absorbed Relus: their producer writes the Relu's output name directly.
        foreach (var relu in plan.AbsorbedRelus)
        {
            var producer = graph.Node.Single(n => n.Output.Contains(relu.Input[0]));
            producer.Output[producer.Output.IndexOf(relu.Input[0])] = relu.Output[0];
            graph.Node.Remove(relu);
        }

        var parameters = new Dictionary<string, (float Scale, byte ZeroPoint)>(StringComparer.Ordinal);
        foreach (var tensor in plan.Quantized)
        {
            parameters[tensor] = ActivationParameters(ranges[tensor]);
        }
        foreach (var (tensor, source) in plan.Inherited)
        {
            parameters[tensor] = parameters[source];
        }

        var initializers = GraphTensors.Initializers(graph);
        var prologue = new List<NodeProto>();
        foreach (var conv in plan.Convolutions)
        {
            var inputScale = parameters[conv.Input[0]].Scale;
            QuantizeConvParameters(graph, conv, initializers, inputScale, weightLevels, prologue);
        }

        // Quantize/dequantize pairs right after each tensor's producer (the graph input: first of all).
        var rewritten = new List<NodeProto>(prologue);
        var pairs = new Dictionary<string, NodeProto[]>(StringComparer.Ordinal);
        foreach (var (tensor, (scale, zeroPoint)) in parameters)
        {
            graph.Initializer.Add(GraphTensors.Scalar($"{tensor}_scale", scale));
            graph.Initializer.Add(GraphTensors.ScalarUInt8($"{tensor}_zero_point", zeroPoint));
            pairs[tensor] =
            [
                new NodeProto { OpType = "QuantizeLinear", Name = $"{tensor}_quantize", Input = { tensor, $"{tensor}_scale", $"{tensor}_zero_point" }, Output = { $"{tensor}_quantized" } },
                new NodeProto { OpType = "DequantizeLinear", Name = $"{tensor}_dequantize", Input = { $"{tensor}_quantized", $"{tensor}_scale", $"{tensor}_zero_point" }, Output = { $"{tensor}_dequantized" } },
            ];
        }
        foreach (var node in graph.Node)
        {
            for (var i = 0; i < node.Input.Count; i++)
            {
                if (pairs.ContainsKey(node.Input[i]))
                {
                    node.Input[i] = $"{node.Input[i]}_dequantized";
                }
            }
        }
        foreach (var input in graph.Input.Where(i => pairs.ContainsKey(i.Name)))
        {
            rewritten.AddRange(pairs[input.Name]);
        }
        foreach (var node in graph.Node)
        {
            rewritten.Add(node);
            foreach (var output in node.Output.Where(pairs.ContainsKey))
            {
                rewritten.AddRange(pairs[output]);
            }
        }
        graph.Node.Clear();
        graph.Node.AddRange(rewritten);
        BatchNormFolding.RemoveUnusedInitializers(graph);
    }

    /// <summary>uint8 scale and zero point covering [min, max] (and 0, which must be exact).</summary>
    internal static (float Scale, byte ZeroPoint) ActivationParameters(ActivationRange range)
    {
        var min = Math.Min(range.Min, 0f);
        var max = Math.Max(range.Max, 0f);
        if (!(max > min) || !float.IsFinite(max - min))
        {
            return (1f, 0);
        }
        var scale = (max - min) / 255f;
        var zeroPoint = (byte)Math.Clamp(Math.Round(-min / scale), 0, 255);
        return (scale, zeroPoint);
    }

    private static void QuantizeConvParameters(GraphProto graph, NodeProto conv, Dictionary<string, TensorProto> initializers, float inputScale, int weightLevels, List<NodeProto> prologue)
    {
        var weightTensor = initializers[conv.Input[1]];
        var weights = GraphTensors.Floats(weightTensor);
        var channels = (int)weightTensor.Dims[0];
        var perChannel = weights.Length / channels;
        var scales = new float[channels];
        var quantized = new sbyte[weights.Length];
        for (var c = 0; c < channels; c++)
        {
            var largest = 0f;
            for (var i = 0; i < perChannel; i++)
            {
                largest = Math.Max(largest, Math.Abs(weights[(c * perChannel) + i]));
            }
            scales[c] = largest > 0 ? largest / weightLevels : 1f;
            for (var i = 0; i < perChannel; i++)
            {
                quantized[(c * perChannel) + i] = (sbyte)Math.Clamp(Math.Round(weights[(c * perChannel) + i] / scales[c]), -weightLevels, weightLevels);
            }
        }
        var name = conv.Input[1];
        graph.Initializer.Add(GraphTensors.Int8($"{name}_quantized", quantized, weightTensor.Dims));
        graph.Initializer.Add(GraphTensors.Float($"{name}_scale", scales, [channels]));
        graph.Initializer.Add(GraphTensors.Int8($"{name}_zero_point", new sbyte[channels], [channels]));
        prologue.Add(PerChannelDequantize($"{name}_dequantize", $"{name}_quantized", $"{name}_scale", $"{name}_zero_point", $"{name}_dequantized"));
        conv.Input[1] = $"{name}_dequantized";
        if (conv.Input.Count > 2 && initializers.TryGetValue(conv.Input[2], out var biasTensor))
        {
            var bias = GraphTensors.Floats(biasTensor);
            var biasScales = new float[channels];
            var biasQuantized = new int[channels];
            for (var c = 0; c < channels; c++)
            {
                biasScales[c] = inputScale * scales[c];
                biasQuantized[c] = (int)Math.Clamp(Math.Round(bias[c] / biasScales[c]), int.MinValue + 1, int.MaxValue);
            }
            var biasName = conv.Input[2];
            graph.Initializer.Add(GraphTensors.Int32($"{biasName}_quantized", biasQuantized, [channels]));
            graph.Initializer.Add(GraphTensors.Float($"{biasName}_scale", biasScales, [channels]));
            graph.Initializer.Add(GraphTensors.Int32($"{biasName}_zero_point", new int[channels], [channels]));
            prologue.Add(PerChannelDequantize($"{biasName}_dequantize", $"{biasName}_quantized", $"{biasName}_scale", $"{biasName}_zero_point", $"{biasName}_dequantized"));
            conv.Input[2] = $"{biasName}_dequantized";
        }
    }

    private static NodeProto PerChannelDequantize(string name, string input, string scale, string zeroPoint, string output) =>
        new()
        {
            OpType = "DequantizeLinear",
            Name = name,
            Input = { input, scale, zeroPoint },
            Output = { output },
            Attribute = { new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 0 } },
        };
}
