using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// One entry of the architecture registry (<see cref="BackboneCatalog"/>), as timm keeps one per model:
/// the module to build (with torchvision's parameter names, and its own ONNX emission), the torchvision
/// layer the new head replaces and so the <c>state_dict</c> keys that are the head's, the stages
/// <c>--unfreeze</c> understands, the feature width, the preprocessing, and how a <c>state_dict</c>'s
/// keys and shapes are recognised as this architecture. Adding an architecture is adding an entry.
/// </summary>
/// <param name="Name">The id in manifests and on the command line (<c>resnet50</c>, <c>vgg16_bn</c>), torchvision's function name.</param>
public abstract record BackboneArchitecture(string Name)
{
    /// <summary>The family, for people: ResNet, VGG, AlexNet, DenseNet.</summary>
    public abstract string Family { get; }

    /// <summary>
    /// The torchvision module the head replaces: <c>fc</c> (ResNet), <c>classifier.6</c> (VGG, AlexNet),
    /// <c>classifier</c> (DenseNet). Its <c>weight</c> and <c>bias</c> are the head's <c>fc.weight</c> and
    /// <c>fc.bias</c>; every other key of a torchvision <c>state_dict</c> is the backbone's, under the same name.
    /// </summary>
    public abstract string ReplacedLayer { get; }

    /// <summary>The stages <c>--unfreeze</c> names, input side first; finetune's default is the last.</summary>
    public abstract IReadOnlyList<string> StageNames { get; }

    /// <summary>Width of the replaced layer's input: the features the head reads (with one pooled stage).</summary>
    public abstract int NumFeatures { get; }

    /// <summary>
    /// How many stages' pooled outputs a head may read (<c>HeadSpec.PooledStages</c>). 1 unless an
    /// architecture says more: the head then reads exactly what the replaced layer read.
    /// </summary>
    public virtual int MaxPooledStages => 1;

    /// <summary>The head as this architecture can carry it: <c>PooledStages</c> at most <see cref="MaxPooledStages"/>.</summary>
    public HeadSpec Fit(HeadSpec head)
    {
        ArgumentNullException.ThrowIfNull(head);
        return head.PooledStages <= MaxPooledStages ? head : head with { PooledStages = MaxPooledStages };
    }

    /// <summary>The smallest input side the architecture's downsampling leaves at least one pixel of.</summary>
    public virtual int MinInputSize => 32;

    /// <summary>Why an input side is not possible for this architecture; null when it is.</summary>
    public virtual string? InputSizeProblem(int size) =>
        size >= MinInputSize ? null : $"{Name} takes inputs of at least {MinInputSize} x {MinInputSize} pixels, not {size}";

    /// <summary>
    /// torchvision's evaluation transform for these weights at a given input side: shorter side to
    /// size / 0.875 (256 for 224), centre crop, bilinear, RGB, ImageNet mean and std.
    /// </summary>
    public virtual PreprocessingConfig Preprocessing(int inputSize) =>
        PreprocessingConfig.TorchVision with { InputSize = inputSize, ResizeSize = (int)Math.Round(inputSize / 0.875) };

    /// <summary>A randomly initialised module (weights are loaded afterwards).</summary>
    public abstract Backbone Create();

    /// <summary>This architecture's layout in the terms of <see cref="DescribeLayout"/>.</summary>
    public abstract string Layout { get; }

    /// <summary>
    /// The layout that backbone keys (canonical, without the head's) and their shapes describe, in this
    /// family's terms (ResNet: block kind and blocks per stage; VGG and AlexNet: the convolutions' widths
    /// and pooling; DenseNet: widths and layers per block); null when the keys are not this family's at all.
    /// </summary>
    public abstract string? DescribeLayout(IReadOnlyDictionary<string, long[]> shapes);

    /// <summary>The layout a whole torchvision <c>state_dict</c> (names to shapes) describes in this family's terms; see <see cref="DescribeLayout"/>.</summary>
    public string? FoundLayout(IReadOnlyDictionary<string, long[]> stateDictShapes)
    {
        ArgumentNullException.ThrowIfNull(stateDictShapes);
        var backbone = new Dictionary<string, long[]>(StringComparer.Ordinal);
        foreach (var (key, shape) in stateDictShapes)
        {
            var canonical = CanonicalKey(key);
            if (!IsHeadKey(canonical))
            {
                backbone[canonical] = shape;
            }
        }
        return DescribeLayout(backbone);
    }

    /// <summary>True when a torchvision <c>state_dict</c> (names to shapes) is this architecture's.</summary>
    public bool Matches(IReadOnlyDictionary<string, long[]> stateDictShapes) => FoundLayout(stateDictShapes) == Layout;

    /// <summary>The name this torchvision release uses for a key older releases wrote differently; the key itself otherwise.</summary>
    public virtual string CanonicalKey(string key) => key;

    /// <summary>The <c>state_dict</c> key of the replaced layer's parameter, e.g. <c>classifier.6.weight</c>.</summary>
    public string HeadKey(string parameter) => $"{ReplacedLayer}.{parameter}";

    /// <summary>True for the replaced layer's keys (<c>fc.*</c>, <c>classifier.6.*</c>, ...).</summary>
    public bool IsHeadKey(string key) => key.StartsWith(ReplacedLayer + ".", StringComparison.Ordinal) && key.IndexOf('.', ReplacedLayer.Length + 1) < 0;
}
