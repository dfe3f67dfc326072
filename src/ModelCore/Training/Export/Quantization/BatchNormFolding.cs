using Onnx;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// Folds every inference-form BatchNormalization that follows a Conv (whose output nothing else reads) into that
/// Conv's weights and bias: w' = w * gamma / sqrt(var + eps) per output channel, b' = (b - mean) * gamma / sqrt(var + eps) + beta.
/// The graph computes the same function (up to float rounding); quantisation then sees the weights that actually run.
/// </summary>
internal static class BatchNormFolding
{
    public static int Fold(GraphProto graph)
    {
        var initializers = GraphTensors.Initializers(graph);
        var readers = graph.Node.SelectMany(n => n.Input).Concat(graph.Output.Select(o => o.Name))
            .GroupBy(n => n, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
        var producers = graph.Node.ToDictionary(n => n.Output[0], StringComparer.Ordinal);
        var folded = 0;
        foreach (var bn in graph.Node.Where(n => n.OpType == "BatchNormalization").ToList())
        {
            if (!producers.TryGetValue(bn.Input[0], out var conv) || conv.OpType != "Conv" || readers[conv.Output[0]] != 1
                || !initializers.TryGetValue(conv.Input[1], out var weightTensor)
                || bn.Input.Skip(1).Any(i => !initializers.ContainsKey(i)))
            {
                continue;
            }
            var epsilon = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            var gamma = GraphTensors.Floats(initializers[bn.Input[1]]);
            var beta = GraphTensors.Floats(initializers[bn.Input[2]]);
            var mean = GraphTensors.Floats(initializers[bn.Input[3]]);
            var variance = GraphTensors.Floats(initializers[bn.Input[4]]);
            var weights = GraphTensors.Floats(weightTensor);
            var channels = gamma.Length;
            var perChannel = weights.Length / channels;
            var bias = conv.Input.Count > 2 && initializers.TryGetValue(conv.Input[2], out var b) ? GraphTensors.Floats(b) : new float[channels];
            var newWeights = new float[weights.Length];
            var newBias = new float[channels];
            for (var c = 0; c < channels; c++)
            {
                var factor = gamma[c] / Math.Sqrt(variance[c] + epsilon);
                for (var i = 0; i < perChannel; i++)
                {
                    newWeights[(c * perChannel) + i] = (float)(weights[(c * perChannel) + i] * factor);
                }
                newBias[c] = (float)(((bias[c] - mean[c]) * factor) + beta[c]);
            }
            var weightName = $"{conv.Input[1]}_bn_folded";
            var biasName = $"{conv.Input[1]}_bn_folded_bias";
            graph.Initializer.Add(GraphTensors.Float(weightName, newWeights, weightTensor.Dims));
            graph.Initializer.Add(GraphTensors.Float(biasName, newBias, [channels]));
            conv.Input[1] = weightName;
            if (conv.Input.Count > 2)
            {
                conv.Input[2] = biasName;
            }
            else
            {
                conv.Input.Add(biasName);
            }
            conv.Output[0] = bn.Output[0];
            graph.Node.Remove(bn);
            folded++;
        }
        RemoveUnusedInitializers(graph);
        return folded;
    }

    public static void RemoveUnusedInitializers(GraphProto graph)
    {
        var used = graph.Node.SelectMany(n => n.Input).ToHashSet(StringComparer.Ordinal);
        foreach (var unused in graph.Initializer.Where(t => !used.Contains(t.Name)).ToList())
        {
            graph.Initializer.Remove(unused);
        }
    }
}
