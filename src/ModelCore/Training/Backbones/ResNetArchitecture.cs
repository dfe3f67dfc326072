using System.Globalization;
using System.Text.RegularExpressions;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// A ResNet: block kind, blocks per stage, and padding convention. The head replaces <c>fc</c>; the
/// stages are <c>layer1</c>..<c>layer4</c>, and a head may read the pooled outputs of up to all four.
/// </summary>
public sealed partial record ResNetArchitecture(string Name, ResNetBlockKind Block, IReadOnlyList<int> Layers, PaddingStyle Padding = PaddingStyle.Symmetric)
    : BackboneArchitecture(Name)
{
    public static readonly ResNetArchitecture ResNet18 = new("resnet18", ResNetBlockKind.Basic, [2, 2, 2, 2]);
    public static readonly ResNetArchitecture ResNet34 = new("resnet34", ResNetBlockKind.Basic, [3, 4, 6, 3]);
    public static readonly ResNetArchitecture ResNet50 = new("resnet50", ResNetBlockKind.Bottleneck, [3, 4, 6, 3]);
    public static readonly ResNetArchitecture ResNet101 = new("resnet101", ResNetBlockKind.Bottleneck, [3, 4, 23, 3]);
    public static readonly ResNetArchitecture ResNet152 = new("resnet152", ResNetBlockKind.Bottleneck, [3, 8, 36, 3]);

    /// <summary>The ImageNet ResNet shipped as ONNX in Microsoft.ML.DnnImageFeaturizer.ResNet18 (a CNTK export): [2, 2, 2, 3] basic blocks, top/left padding.</summary>
    public static readonly ResNetArchitecture OnnxResNet18 = new("onnx-resnet18", ResNetBlockKind.Basic, [2, 2, 2, 3], PaddingStyle.TopLeft);

    /// <summary>torchvision's ResNets, in the registry's order.</summary>
    public static IReadOnlyList<ResNetArchitecture> TorchVision { get; } = [ResNet18, ResNet34, ResNet50, ResNet101, ResNet152];

    public override string Family => "ResNet";

    public override string ReplacedLayer => "fc";

    public override IReadOnlyList<string> StageNames { get; } = ["layer1", "layer2", "layer3", "layer4"];

    public override int NumFeatures => 512 * Expansion;

    public override int MaxPooledStages => 4;

    /// <summary>The ONNX ResNet-18 takes 224 x 224 only (its mean image is that size); torchvision's take any size from 32.</summary>
    public override string? InputSizeProblem(int size) =>
        Padding == PaddingStyle.TopLeft && size != OnnxResNetImporter.Preprocessing.InputSize
            ? $"{Name} takes {OnnxResNetImporter.Preprocessing.InputSize} x {OnnxResNetImporter.Preprocessing.InputSize} inputs only (its mean image is that size), not {size}"
            : base.InputSizeProblem(size);

    public override PreprocessingConfig Preprocessing(int inputSize) =>
        Padding == PaddingStyle.TopLeft ? OnnxResNetImporter.Preprocessing : base.Preprocessing(inputSize);

    public int Expansion => Block == ResNetBlockKind.Basic ? 1 : 4;

    /// <summary>Output widths of layer1..layer4.</summary>
    public IReadOnlyList<int> StageWidths => [64 * Expansion, 128 * Expansion, 256 * Expansion, 512 * Expansion];

    public override Backbone Create() => new TorchVisionResNet(this);

    public override string Layout => $"{Block} blocks [{string.Join(", ", Layers)}] in layer1..layer4";

    /// <summary>Blocks per <c>layerN</c> and whether they are bottlenecks (<c>conv3</c>).</summary>
    public override string? DescribeLayout(IReadOnlyDictionary<string, long[]> shapes)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        var blocks = new SortedDictionary<int, HashSet<int>>();
        var bottleneck = false;
        foreach (var key in shapes.Keys)
        {
            var match = BlockKey().Match(key);
            if (!match.Success)
            {
                continue;
            }
            var stage = int.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
            if (!blocks.TryGetValue(stage, out var set))
            {
                blocks[stage] = set = [];
            }
            set.Add(int.Parse(match.Groups[2].ValueSpan, CultureInfo.InvariantCulture));
            bottleneck |= match.Groups[3].ValueSpan.SequenceEqual("conv3");
        }
        if (blocks.Count == 0 || !shapes.ContainsKey("conv1.weight"))
        {
            return null;
        }
        var counts = Enumerable.Range(1, 4).Select(stage => blocks.TryGetValue(stage, out var set) ? set.Count : 0);
        var kind = bottleneck ? ResNetBlockKind.Bottleneck : ResNetBlockKind.Basic;
        return $"{kind} blocks [{string.Join(", ", counts)}] in layer1..layer4";
    }

    /// <summary>Padding of a kernel x kernel window moved by stride, as (left, right, top, bottom).</summary>
    public (int Left, int Right, int Top, int Bottom) PadsFor(int kernel, int stride)
    {
        if (Padding == PaddingStyle.Symmetric)
        {
            return (kernel / 2, kernel / 2, kernel / 2, kernel / 2);
        }
        var total = Math.Max(kernel - stride, 0);
        var begin = (total + 1) / 2;
        return (begin, total - begin, begin, total - begin);
    }

    [GeneratedRegex(@"^layer(\d+)\.(\d+)\.([a-z]+\d*)\.")]
    private static partial Regex BlockKey();
}
