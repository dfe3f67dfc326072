using System.Globalization;
using ServerlessClassifier.ModelCore.Export;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's VGG and AlexNet without <c>classifier.6</c>: <c>features</c>, <c>avgpool</c>, then
/// <c>classifier.0</c>..<c>5</c>, so the features are the 4096 inputs of the replaced layer. Field and
/// <c>nn.Sequential</c> index names are torchvision's, so its <c>state_dict</c> loads by name.
/// </summary>
public sealed class TorchVisionConvNet : Backbone
{
    private readonly Sequential features;
    private readonly AdaptiveAvgPool2d avgpool;
    private readonly Sequential classifier;

    public TorchVisionConvNet(ConvNetArchitecture architecture) : base(architecture.Name)
    {
        Architecture = architecture;
        features = Sequential(architecture.Features.Select((layer, i) => (Index(i), Create(layer))));
        avgpool = AdaptiveAvgPool2d(architecture.PoolSize);
        classifier = Sequential(architecture.Classifier.Select((layer, i) => (Index(i), Create(layer))));
        RegisterComponents();
    }

    public override ConvNetArchitecture Architecture { get; }

    public override int NumFeatures => Architecture.NumFeatures;

    /// <summary>Each <c>features</c> entry in its block, <c>avgpool</c> in the stem, <c>classifier.0</c>..<c>5</c> as the stage <c>classifier</c>.</summary>
    public override IReadOnlyList<BackbonePart> Parts() =>
    [
        .. features.named_children().Select(c => new BackbonePart(ConvNetArchitecture.BlockName(Architecture.BlockOf(int.Parse(c.name, CultureInfo.InvariantCulture))), c.module)),
        new(null, avgpool),
        new(ConvNetArchitecture.ClassifierStage, classifier),
    ];

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return classifier.call(avgpool.call(features.call(input)).flatten(1)).MoveToOuterDisposeScope();
    }

    internal override string EmitOnnx(OnnxGraphBuilder graph, string input, int inputSize)
    {
        var x = input;
        var (side, channels) = (inputSize, 3);
        for (var i = 0; i < Architecture.Features.Count; i++)
        {
            var layer = Architecture.Features[i];
            var key = $"backbone.features.{Index(i)}";
            x = layer.Kind switch
            {
                ConvNetLayerKind.Conv => graph.Conv(x, key, layer.Stride, (layer.Padding, layer.Padding, layer.Padding, layer.Padding)),
                ConvNetLayerKind.BatchNorm => graph.BatchNorm(x, key),
                ConvNetLayerKind.Relu => graph.Unary("Relu", x),
                ConvNetLayerKind.MaxPool => graph.MaxPool(x, layer.Kernel, layer.Stride, default),
                _ => throw new NotSupportedException($"{layer.Kind} in features"),
            };
            side = layer.OutputSize(side);
            channels = layer.Kind == ConvNetLayerKind.Conv ? layer.Out : channels;
        }
        if (side < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(inputSize), inputSize, $"{Architecture.Name} needs inputs of at least {Architecture.MinInputSize} x {Architecture.MinInputSize}.");
        }
        x = graph.AdaptiveAveragePoolFlat(x, channels, side, side, Architecture.PoolSize);
        for (var i = 0; i < Architecture.Classifier.Count; i++)
        {
            var layer = Architecture.Classifier[i];
            x = layer.Kind switch
            {
                ConvNetLayerKind.Linear => graph.Linear(x, $"backbone.classifier.{Index(i)}"),
                ConvNetLayerKind.Relu => graph.Unary("Relu", x),
                ConvNetLayerKind.Dropout => x, // the identity at inference
                _ => throw new NotSupportedException($"{layer.Kind} in classifier"),
            };
        }
        return x;
    }

    private static string Index(int i) => i.ToString(CultureInfo.InvariantCulture);

    private static Module<Tensor, Tensor> Create(ConvNetLayer layer) => layer.Kind switch
    {
        ConvNetLayerKind.Conv => Conv2d(layer.In, layer.Out, kernel_size: layer.Kernel, stride: layer.Stride, padding: layer.Padding),
        ConvNetLayerKind.BatchNorm => BatchNorm2d(layer.Out),
        ConvNetLayerKind.Relu => ReLU(inplace: true),
        ConvNetLayerKind.MaxPool => MaxPool2d(kernel_size: layer.Kernel, stride: layer.Stride),
        ConvNetLayerKind.Dropout => Dropout(0.5),
        ConvNetLayerKind.Linear => Linear(layer.In, layer.Out),
        _ => throw new ArgumentOutOfRangeException(nameof(layer), layer.Kind, "unknown layer kind"),
    };
}
