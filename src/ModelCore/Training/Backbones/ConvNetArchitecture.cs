using System.Globalization;
using System.Text.RegularExpressions;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// The plain convolutional networks of torchvision, VGG and AlexNet: <c>features</c> (an
/// <c>nn.Sequential</c> of convolutions, ReLUs and max-pools), <c>avgpool</c> (adaptive, to
/// <see cref="PoolSize"/> x <see cref="PoolSize"/>) and <c>classifier</c>, whose last layer,
/// <c>classifier.6</c>, the head replaces: the backbone ends with the 4096-wide <c>classifier.0</c>..<c>5</c>
/// (frozen in head mode, trainable as the stage <c>classifier</c>). The feature blocks, each ending at a
/// max-pool, are the stages <c>block1</c>..<c>blockN</c>.
/// </summary>
public abstract partial record ConvNetArchitecture(string Name) : BackboneArchitecture(Name)
{
    public const string ClassifierStage = "classifier";

    /// <summary>The <c>features</c> entries, at their indices.</summary>
    public abstract IReadOnlyList<ConvNetLayer> Features { get; }

    /// <summary>The <c>classifier</c> entries the backbone keeps (0..5; the head replaces 6).</summary>
    public abstract IReadOnlyList<ConvNetLayer> Classifier { get; }

    /// <summary>The side <c>avgpool</c> pools to (VGG 7, AlexNet 6).</summary>
    public abstract int PoolSize { get; }

    public override string ReplacedLayer => "classifier.6";

    public override IReadOnlyList<string> StageNames =>
        [.. Enumerable.Range(1, Features.Count(l => l.Kind == ConvNetLayerKind.MaxPool)).Select(BlockName), ClassifierStage];

    public override int NumFeatures => Classifier.Last(l => l.Kind == ConvNetLayerKind.Linear).Out;

    /// <summary>The smallest input that every convolution and pooling of <see cref="Features"/> still fits.</summary>
    public override int MinInputSize
    {
        get
        {
            var size = 1;
            while (FeatureSide(size) < 1)
            {
                size++;
            }
            return Math.Max(size, 32);
        }
    }

    /// <summary>The block (1-based) a <c>features</c> entry belongs to: blocks end at a max-pool.</summary>
    public int BlockOf(int index) => 1 + Features.Take(index).Count(l => l.Kind == ConvNetLayerKind.MaxPool);

    public static string BlockName(int block) => "block" + block.ToString(CultureInfo.InvariantCulture);

    /// <summary>The side of the <c>features</c> output for an input side.</summary>
    public int FeatureSide(int inputSize) => Features.Aggregate(inputSize, (size, layer) => layer.OutputSize(size));

    public override Backbone Create() => new TorchVisionConvNet(this);

    public override string Layout => DescribeLayout(OwnShapes()) ?? throw new InvalidOperationException($"{Name} describes no layout.");

    /// <summary>
    /// The convolutions' output widths in order, an M for each max-pool between them (seen in the gaps of
    /// the <c>features</c> indices), kernels other than 3 x 3, BatchNorm, and the classifier's Linear widths.
    /// </summary>
    public override string? DescribeLayout(IReadOnlyDictionary<string, long[]> shapes)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        var convs = new SortedDictionary<int, long[]>();
        var batchNorm = false;
        var linears = new SortedDictionary<int, long[]>();
        foreach (var (key, shape) in shapes)
        {
            var match = SequentialKey().Match(key);
            if (!match.Success)
            {
                continue;
            }
            var index = int.Parse(match.Groups[2].ValueSpan, CultureInfo.InvariantCulture);
            var parameter = match.Groups[3].Value;
            if (match.Groups[1].Value == "features")
            {
                batchNorm |= parameter == "running_mean";
                if (parameter == "weight" && shape.Length == 4)
                {
                    convs[index] = shape;
                }
            }
            else if (parameter == "weight" && shape.Length == 2)
            {
                linears[index] = shape;
            }
        }
        if (convs.Count == 0 || linears.Count == 0)
        {
            return null;
        }
        var tokens = new List<string>();
        var previous = -1;
        var step = batchNorm ? 3 : 2;
        foreach (var (index, shape) in convs)
        {
            if (previous >= 0)
            {
                tokens.AddRange(Enumerable.Repeat("M", Math.Max(index - previous - step, 0)));
            }
            tokens.Add(shape[^1] == 3 ? $"{shape[0]}" : $"{shape[0]}/{shape[^1]}x{shape[^1]}");
            previous = index;
        }
        var classifier = string.Join(", ", linears.Select(l => $"{l.Key}: {l.Value[1]}->{l.Value[0]}"));
        return $"convolutions [{string.Join(", ", tokens)}]{(batchNorm ? " with BatchNorm" : "")}, classifier Linear {classifier}";
    }

    /// <summary>The backbone keys' shapes this architecture's module has (computed, not built).</summary>
    private Dictionary<string, long[]> OwnShapes()
    {
        var shapes = new Dictionary<string, long[]>(StringComparer.Ordinal);
        for (var i = 0; i < Features.Count; i++)
        {
            var layer = Features[i];
            if (layer.Kind == ConvNetLayerKind.Conv)
            {
                shapes[$"features.{i}.weight"] = [layer.Out, layer.In, layer.Kernel, layer.Kernel];
            }
            else if (layer.Kind == ConvNetLayerKind.BatchNorm)
            {
                shapes[$"features.{i}.running_mean"] = [layer.Out];
            }
        }
        for (var i = 0; i < Classifier.Count; i++)
        {
            if (Classifier[i].Kind == ConvNetLayerKind.Linear)
            {
                shapes[$"classifier.{i}.weight"] = [Classifier[i].Out, Classifier[i].In];
            }
        }
        return shapes;
    }

    [GeneratedRegex(@"^(features|classifier)\.(\d+)\.([a-z_]+)$")]
    private static partial Regex SequentialKey();
}
