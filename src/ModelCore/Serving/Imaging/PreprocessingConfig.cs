namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>How a decoded image is brought to the model's input size.</summary>
public enum ResizeMode
{
    /// <summary>Resize straight to InputSize x InputSize, ignoring the aspect ratio.</summary>
    Stretch,

    /// <summary>Resize the shorter side to <see cref="PreprocessingConfig.ResizeSize"/> keeping the aspect ratio, then crop the centre InputSize x InputSize (torchvision's Resize + CenterCrop).</summary>
    ShorterSideThenCenterCrop,
}

/// <summary>The resampling filter; training and serving must use the same one (docs/architecture.md, "Model format": bilinear and bicubic resizes give measurably different features).</summary>
public enum Interpolation
{
    Bilinear,
    Bicubic,
}

/// <summary>Order of the three colour planes in the model input.</summary>
public enum ChannelOrder
{
    Rgb,
    Bgr,
}

/// <summary>
/// The preprocessing a model expects, stored in its manifest and nowhere else (timm's pretrained
/// configuration). Pixels are 0..255 bytes after decoding; the model input is a float CHW planar
/// tensor computed as <c>(pixel * Scale - Mean[c]) / Std[c]</c> per channel, or
/// <c>pixel * Scale - MeanImage[c, y, x]</c> when the model comes with a per-pixel mean image.
/// </summary>
public sealed record PreprocessingConfig
{
    /// <summary>Side of the square model input, in pixels.</summary>
    public int InputSize { get; init; } = 224;

    public ResizeMode Resize { get; init; } = ResizeMode.ShorterSideThenCenterCrop;

    /// <summary>Shorter-side target before the centre crop (only for <see cref="ResizeMode.ShorterSideThenCenterCrop"/>): 256 for a 224 input is torchvision's 0.875 crop.</summary>
    public int ResizeSize { get; init; } = 256;

    public Interpolation Interpolation { get; init; } = Interpolation.Bilinear;

    public ChannelOrder ChannelOrder { get; init; } = ChannelOrder.Rgb;

    /// <summary>Multiplier applied to 0..255 pixel values first: 1/255 for torchvision models, 1 for the ONNX ResNet.</summary>
    public float Scale { get; init; } = 1f / 255f;

    /// <summary>Per-channel mean, in <see cref="ChannelOrder"/>, after scaling; ignored when <see cref="MeanImageFile"/> is set.</summary>
    public IReadOnlyList<float> Mean { get; init; } = [0.485f, 0.456f, 0.406f];

    /// <summary>Per-channel standard deviation, in <see cref="ChannelOrder"/>, after scaling; ignored when <see cref="MeanImageFile"/> is set.</summary>
    public IReadOnlyList<float> Std { get; init; } = [0.229f, 0.224f, 0.225f];

    /// <summary>
    /// Name of a file in the model folder holding a 3 x InputSize x InputSize float32 mean image (little-endian,
    /// CHW, in <see cref="ChannelOrder"/>) subtracted after scaling, instead of Mean/Std. The ONNX ResNet-18 uses one.
    /// </summary>
    public string? MeanImageFile { get; init; }

    /// <summary>ImageNet statistics as torchvision's pretrained ResNets expect them.</summary>
    public static PreprocessingConfig TorchVision { get; } = new();
}
