namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's AlexNet (<c>models.alexnet</c>, the one-GPU variant of the paper): five convolutions in
/// three blocks, <c>avgpool</c> to 6 x 6, and a classifier whose dropouts come before its Linear layers.
/// </summary>
public sealed record AlexNetArchitecture() : ConvNetArchitecture("alexnet")
{
    public static AlexNetArchitecture AlexNet { get; } = new();

    public override string Family => "AlexNet";

    public override int PoolSize => 6;

    public override IReadOnlyList<ConvNetLayer> Features { get; } =
    [
        ConvNetLayer.Conv(3, 64, kernel: 11, stride: 4, padding: 2), ConvNetLayer.Relu, ConvNetLayer.MaxPool(3, 2),
        ConvNetLayer.Conv(64, 192, kernel: 5, padding: 2), ConvNetLayer.Relu, ConvNetLayer.MaxPool(3, 2),
        ConvNetLayer.Conv(192, 384, kernel: 3), ConvNetLayer.Relu,
        ConvNetLayer.Conv(384, 256, kernel: 3), ConvNetLayer.Relu,
        ConvNetLayer.Conv(256, 256, kernel: 3), ConvNetLayer.Relu, ConvNetLayer.MaxPool(3, 2),
    ];

    public override IReadOnlyList<ConvNetLayer> Classifier { get; } =
    [
        ConvNetLayer.Dropout, ConvNetLayer.Linear(256 * 6 * 6, 4096), ConvNetLayer.Relu,
        ConvNetLayer.Dropout, ConvNetLayer.Linear(4096, 4096), ConvNetLayer.Relu,
    ];
}
