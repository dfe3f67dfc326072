namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>What one entry of a VGG or AlexNet <c>nn.Sequential</c> is.</summary>
public enum ConvNetLayerKind
{
    /// <summary><c>nn.Conv2d(In, Out, Kernel, Stride, Padding)</c> with a bias.</summary>
    Conv,

    /// <summary><c>nn.BatchNorm2d(Out)</c>.</summary>
    BatchNorm,

    Relu,

    /// <summary><c>nn.MaxPool2d(Kernel, Stride)</c>; ends a feature block.</summary>
    MaxPool,

    /// <summary><c>nn.Dropout(0.5)</c>: the identity at inference.</summary>
    Dropout,

    /// <summary><c>nn.Linear(In, Out)</c>.</summary>
    Linear,
}

/// <summary>One entry of a torchvision <c>features</c> or <c>classifier</c> <c>nn.Sequential</c>, at its index.</summary>
public sealed record ConvNetLayer(ConvNetLayerKind Kind, int In = 0, int Out = 0, int Kernel = 0, int Stride = 1, int Padding = 0)
{
    public static ConvNetLayer Conv(int input, int output, int kernel, int stride = 1, int padding = 1) => new(ConvNetLayerKind.Conv, input, output, kernel, stride, padding);

    public static ConvNetLayer BatchNorm(int channels) => new(ConvNetLayerKind.BatchNorm, channels, channels);

    public static ConvNetLayer Relu { get; } = new(ConvNetLayerKind.Relu);

    public static ConvNetLayer MaxPool(int kernel, int stride) => new(ConvNetLayerKind.MaxPool, Kernel: kernel, Stride: stride);

    public static ConvNetLayer Dropout { get; } = new(ConvNetLayerKind.Dropout);

    public static ConvNetLayer Linear(int input, int output) => new(ConvNetLayerKind.Linear, input, output);

    /// <summary>The output side of this layer for an input side (convolutions and poolings round down, as torch does); 0 when the window does not fit.</summary>
    public int OutputSize(int size) => Kind switch
    {
        ConvNetLayerKind.Conv => Window(size + (2 * Padding)),
        ConvNetLayerKind.MaxPool => Window(size),
        _ => size,
    };

    private int Window(int padded) => padded < Kernel ? 0 : ((padded - Kernel) / Stride) + 1;
}
