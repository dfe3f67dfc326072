namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's VGG (<c>models.vgg11</c> .. <c>vgg19</c>, and <c>_bn</c> with BatchNorm after every
/// convolution): the configuration's widths, 0 for a max-pool, as torchvision's <c>cfgs</c> "A", "B", "D", "E".
/// </summary>
public sealed record VggArchitecture(string Name, IReadOnlyList<int> Configuration, bool BatchNorm) : ConvNetArchitecture(Name)
{
    private static readonly int[] A = [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
    private static readonly int[] B = [64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];
    private static readonly int[] D = [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0];
    private static readonly int[] E = [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0];

    /// <summary>The eight torchvision VGGs, in the registry's order.</summary>
    public static IReadOnlyList<VggArchitecture> TorchVision { get; } =
    [
        new("vgg11", A, false), new("vgg11_bn", A, true),
        new("vgg13", B, false), new("vgg13_bn", B, true),
        new("vgg16", D, false), new("vgg16_bn", D, true),
        new("vgg19", E, false), new("vgg19_bn", E, true),
    ];

    public override string Family => "VGG";

    public override int PoolSize => 7;

    public override IReadOnlyList<ConvNetLayer> Features { get; } = Layers(Configuration, BatchNorm);

    public override IReadOnlyList<ConvNetLayer> Classifier { get; } =
    [
        ConvNetLayer.Linear(512 * 7 * 7, 4096), ConvNetLayer.Relu, ConvNetLayer.Dropout,
        ConvNetLayer.Linear(4096, 4096), ConvNetLayer.Relu, ConvNetLayer.Dropout,
    ];

    /// <summary>torchvision's <c>make_layers</c>: 3 x 3 convolutions with padding 1, [BatchNorm,] ReLU; 2 x 2 max-pools.</summary>
    private static List<ConvNetLayer> Layers(IReadOnlyList<int> configuration, bool batchNorm)
    {
        var layers = new List<ConvNetLayer>();
        var channels = 3;
        foreach (var width in configuration)
        {
            if (width == 0)
            {
                layers.Add(ConvNetLayer.MaxPool(2, 2));
                continue;
            }
            layers.Add(ConvNetLayer.Conv(channels, width, kernel: 3));
            if (batchNorm)
            {
                layers.Add(ConvNetLayer.BatchNorm(width));
            }
            layers.Add(ConvNetLayer.Relu);
            channels = width;
        }
        return layers;
    }
}
