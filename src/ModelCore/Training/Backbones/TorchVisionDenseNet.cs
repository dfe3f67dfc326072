using ServerlessClassifier.ModelCore.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's DenseNet without <c>classifier</c>: <c>features</c> (conv0, norm0, relu0, pool0,
/// denseblockN/denselayerM, transitionN, norm5), then ReLU and global average pooling, so the features are
/// the replaced layer's input. Module names are torchvision's, so its <c>state_dict</c> loads by name.
/// </summary>
public sealed class TorchVisionDenseNet : Backbone
{
    private readonly Sequential features;

    public TorchVisionDenseNet(DenseNetArchitecture architecture) : base(architecture.Name)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        Architecture = architecture;
        var modules = new List<(string, Module<Tensor, Tensor>)>
        {
            ("conv0", Conv2d(3, architecture.InitFeatures, kernel_size: 7, stride: 2, padding: 3, bias: false)),
            ("norm0", BatchNorm2d(architecture.InitFeatures)),
            ("relu0", ReLU(inplace: true)),
            ("pool0", MaxPool2d(kernel_size: 3, stride: 2, padding: 1)),
        };
        for (var block = 1; block <= architecture.BlockConfig.Count; block++)
        {
            var width = architecture.BlockInput(block);
            if (block > 1)
            {
                modules.Add(($"transition{block - 1}", Transition(architecture.BlockInput(block - 1) + (architecture.BlockConfig[block - 2] * architecture.GrowthRate), width)));
            }
            modules.Add((DenseNetArchitecture.BlockName(block), new DenseBlock(architecture, width, architecture.BlockConfig[block - 1])));
        }
        modules.Add(("norm5", BatchNorm2d(architecture.NumFeatures)));
        features = Sequential(modules);
        RegisterComponents();
    }

    public override DenseNetArchitecture Architecture { get; }

    public override int NumFeatures => Architecture.NumFeatures;

    /// <summary>The stem (conv0..pool0); each dense block with the transition before it; norm5 with the last block.</summary>
    public override IReadOnlyList<BackbonePart> Parts()
    {
        var last = DenseNetArchitecture.BlockName(Architecture.BlockConfig.Count);
        return [.. features.named_children().Select(c => new BackbonePart(
            c.name.StartsWith("denseblock", StringComparison.Ordinal) ? c.name
            : c.name.StartsWith("transition", StringComparison.Ordinal) ? DenseNetArchitecture.BlockName(int.Parse(c.name["transition".Length..], System.Globalization.CultureInfo.InvariantCulture) + 1)
            : c.name == "norm5" ? last
            : null,
            c.module))];
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return functional.adaptive_avg_pool2d(functional.relu(features.call(input)), 1).flatten(1).MoveToOuterDisposeScope();
    }

    internal override string EmitOnnx(OnnxGraphBuilder graph, string input, int inputSize) => EmitOnnxWithMaps(graph, input, inputSize).Features;

    internal override (string Features, IReadOnlyList<PooledMap> Maps) EmitOnnxWithMaps(OnnxGraphBuilder graph, string input, int inputSize)
    {
        var x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, "backbone.features.conv0", 2, (3, 3, 3, 3)), "backbone.features.norm0"));
        x = graph.MaxPool(x, 3, 2, (1, 1, 1, 1));
        for (var block = 1; block <= Architecture.BlockConfig.Count; block++)
        {
            if (block > 1)
            {
                var transition = $"backbone.features.transition{block - 1}";
                x = graph.AveragePool(graph.Conv(graph.Unary("Relu", graph.BatchNorm(x, $"{transition}.norm")), $"{transition}.conv", 1, default), 2, 2);
            }
            var concatenated = new List<string> { x };
            for (var layer = 1; layer <= Architecture.BlockConfig[block - 1]; layer++)
            {
                var prefix = $"backbone.features.{DenseNetArchitecture.BlockName(block)}.denselayer{layer}";
                var y = graph.Conv(graph.Unary("Relu", graph.BatchNorm(graph.Concat(concatenated, axis: 1), $"{prefix}.norm1")), $"{prefix}.conv1", 1, default);
                concatenated.Add(graph.Conv(graph.Unary("Relu", graph.BatchNorm(y, $"{prefix}.norm2")), $"{prefix}.conv2", 1, (1, 1, 1, 1)));
            }
            x = graph.Concat(concatenated, axis: 1);
        }
        var map = graph.Unary("Relu", graph.BatchNorm(x, "backbone.features.norm5"));
        return (graph.GlobalAveragePoolFlat(map), [new PooledMap(map, NumFeatures)]);
    }

    private static Sequential Transition(int input, int output) => Sequential(
        ("norm", BatchNorm2d(input)),
        ("relu", ReLU(inplace: true)),
        ("conv", Conv2d(input, output, kernel_size: 1, bias: false)),
        ("pool", AvgPool2d(kernel_size: 2, stride: 2)));

    /// <summary>torchvision's <c>_DenseBlock</c>: <c>denselayer1</c>..<c>N</c>, each reading the concatenation of the block's input and every earlier layer's output.</summary>
    private sealed class DenseBlock : Module<Tensor, Tensor>
    {
        private readonly DenseLayer[] layers;

        public DenseBlock(DenseNetArchitecture architecture, int input, int count) : base(nameof(DenseBlock))
        {
            layers = [.. Enumerable.Range(0, count).Select(i => new DenseLayer(input + (i * architecture.GrowthRate), architecture.GrowthRate))];
            // Registered by hand under torchvision's names: the count varies, so they cannot be fields.
            for (var i = 0; i < layers.Length; i++)
            {
                register_module($"denselayer{i + 1}", layers[i]);
            }
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var concatenated = new List<Tensor> { input };
            foreach (var layer in layers)
            {
                concatenated.Add(layer.call(cat(concatenated, 1)));
            }
            return cat(concatenated, 1).MoveToOuterDisposeScope();
        }
    }

    /// <summary>torchvision's <c>_DenseLayer</c> (no dropout: torchvision's <c>drop_rate</c> is 0 for every pretrained DenseNet).</summary>
    private sealed class DenseLayer : Module<Tensor, Tensor>
    {
        private readonly BatchNorm2d norm1;
        private readonly ReLU relu1;
        private readonly Conv2d conv1;
        private readonly BatchNorm2d norm2;
        private readonly ReLU relu2;
        private readonly Conv2d conv2;

        public DenseLayer(int input, int growthRate) : base(nameof(DenseLayer))
        {
            norm1 = BatchNorm2d(input);
            relu1 = ReLU(inplace: true);
            conv1 = Conv2d(input, DenseNetArchitecture.BottleneckFactor * growthRate, kernel_size: 1, bias: false);
            norm2 = BatchNorm2d(DenseNetArchitecture.BottleneckFactor * growthRate);
            relu2 = ReLU(inplace: true);
            conv2 = Conv2d(DenseNetArchitecture.BottleneckFactor * growthRate, growthRate, kernel_size: 3, padding: 1, bias: false);
            RegisterComponents();
        }

        public override Tensor forward(Tensor input)
        {
            using var scope = NewDisposeScope();
            var x = conv1.call(relu1.call(norm1.call(input)));
            return conv2.call(relu2.call(norm2.call(x))).MoveToOuterDisposeScope();
        }
    }
}
