using ServerlessClassifier.ModelCore.Export;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>The ResNet's ONNX nodes, in the module's order and with its padding.</summary>
public sealed partial class TorchVisionResNet
{
    internal override string EmitOnnx(OnnxGraphBuilder graph, string input, int inputSize) => EmitOnnxWithMaps(graph, input, inputSize).Features;

    internal override (string Features, IReadOnlyList<PooledMap> Maps) EmitOnnxWithMaps(OnnxGraphBuilder graph, string input, int inputSize)
    {
        var outputs = EmitStages(graph, input, Architecture.Layers.Count);
        // The pooled outputs of the last PooledStages stages, last stage first (the head reads them all).
        var widths = Architecture.StageWidths;
        var maps = outputs.Skip(1).Select((value, stage) => new PooledMap(value, widths[stage])).Reverse().Take(PooledStages).ToList();
        return (graph.Concat([.. maps.Select(m => graph.GlobalAveragePoolFlat(m.Value))], axis: 1), maps);
    }

    /// <summary>
    /// The stem and the first <paramref name="stages"/> stages, as <see cref="ForwardPrefix"/> computes them:
    /// the outputs of the stem (first) and of each stage.
    /// </summary>
    internal List<string> EmitStages(OnnxGraphBuilder graph, string input, int stages)
    {
        var architecture = Architecture;
        var x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, "backbone.conv1", 2, architecture.PadsFor(7, 2)), "backbone.bn1"));
        x = graph.MaxPool(x, 3, 2, architecture.PadsFor(3, 2));
        var outputs = new List<string> { x };
        for (var stage = 1; stage <= stages; stage++)
        {
            for (var block = 0; block < architecture.Layers[stage - 1]; block++)
            {
                var stride = stage > 1 && block == 0 ? 2 : 1;
                x = Block(graph, x, $"backbone.layer{stage}.{block}", stride);
            }
            outputs.Add(x);
        }
        return outputs;
    }

    private string Block(OnnxGraphBuilder graph, string input, string prefix, int stride)
    {
        var architecture = Architecture;
        string x;
        if (architecture.Block == ResNetBlockKind.Basic)
        {
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, $"{prefix}.conv1", stride, architecture.PadsFor(3, stride)), $"{prefix}.bn1"));
            x = graph.BatchNorm(graph.Conv(x, $"{prefix}.conv2", 1, architecture.PadsFor(3, 1)), $"{prefix}.bn2");
        }
        else
        {
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, $"{prefix}.conv1", 1, default), $"{prefix}.bn1"));
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(x, $"{prefix}.conv2", stride, architecture.PadsFor(3, stride)), $"{prefix}.bn2"));
            x = graph.BatchNorm(graph.Conv(x, $"{prefix}.conv3", 1, default), $"{prefix}.bn3");
        }
        var identity = graph.Has($"{prefix}.downsample.0.weight")
            ? graph.BatchNorm(graph.Conv(input, $"{prefix}.downsample.0", stride, default), $"{prefix}.downsample.1")
            : input;
        return graph.Unary("Relu", graph.Add(x, identity));
    }
}
