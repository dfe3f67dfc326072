using System.Globalization;
using System.Text.RegularExpressions;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// torchvision's DenseNet (<c>models.densenet121/161/169/201</c>): a stem, four dense blocks of
/// bottleneck layers (BatchNorm, ReLU, 1 x 1 convolution to 4 x growth rate, BatchNorm, ReLU, 3 x 3
/// convolution to the growth rate, each layer reading the concatenation of all before it), transitions
/// that halve the width and the side, <c>norm5</c>, ReLU and global average pooling. The head replaces
/// <c>classifier</c>. The stages are <c>denseblock1</c>..<c>4</c>, each with the transition before it
/// (and <c>denseblock4</c> with <c>norm5</c>).
/// </summary>
public sealed partial record DenseNetArchitecture(string Name, int GrowthRate, IReadOnlyList<int> BlockConfig, int InitFeatures) : BackboneArchitecture(Name)
{
    /// <summary>Bottleneck width factor (torchvision's <c>bn_size</c>).</summary>
    public const int BottleneckFactor = 4;

    /// <summary>The four torchvision DenseNets, in the registry's order.</summary>
    public static IReadOnlyList<DenseNetArchitecture> TorchVision { get; } =
    [
        new("densenet121", 32, [6, 12, 24, 16], 64),
        new("densenet161", 48, [6, 12, 36, 24], 96),
        new("densenet169", 32, [6, 12, 32, 32], 64),
        new("densenet201", 32, [6, 12, 48, 32], 64),
    ];

    public override string Family => "DenseNet";

    public override string ReplacedLayer => "classifier";

    public override IReadOnlyList<string> StageNames => [.. Enumerable.Range(1, BlockConfig.Count).Select(BlockName)];

    /// <summary>Width of block <paramref name="block"/>'s input (1-based), after the transition before it.</summary>
    public int BlockInput(int block)
    {
        var width = InitFeatures;
        for (var b = 1; b < block; b++)
        {
            width = (width + (BlockConfig[b - 1] * GrowthRate)) / 2;
        }
        return width;
    }

    public override int NumFeatures => BlockInput(BlockConfig.Count) + (BlockConfig[^1] * GrowthRate);

    public static string BlockName(int block) => "denseblock" + block.ToString(CultureInfo.InvariantCulture);

    public override Backbone Create() => new TorchVisionDenseNet(this);

    public override string Layout => Describe(InitFeatures, GrowthRate, BlockConfig);

    /// <summary>Initial width (<c>conv0</c>), growth rate (<c>conv2</c> of a dense layer) and dense layers per block.</summary>
    public override string? DescribeLayout(IReadOnlyDictionary<string, long[]> shapes)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        if (!shapes.TryGetValue("features.conv0.weight", out var stem) || !shapes.TryGetValue("features.denseblock1.denselayer1.conv2.weight", out var growth))
        {
            return null;
        }
        var layers = new SortedDictionary<int, HashSet<int>>();
        foreach (var key in shapes.Keys)
        {
            var match = LayerKey().Match(key);
            if (match.Success)
            {
                var block = int.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
                if (!layers.TryGetValue(block, out var set))
                {
                    layers[block] = set = [];
                }
                set.Add(int.Parse(match.Groups[2].ValueSpan, CultureInfo.InvariantCulture));
            }
        }
        return Describe((int)stem[0], (int)growth[0], [.. layers.Values.Select(s => s.Count)]);
    }

    /// <summary>
    /// torchvision before 0.3 named a dense layer's modules <c>norm.1</c>, <c>conv.2</c>, ...; its
    /// <c>load_state_dict_from_url</c> renames them, and so does this.
    /// </summary>
    public override string CanonicalKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var match = LegacyKey().Match(key);
        return match.Success ? match.Groups[1].Value + match.Groups[2].Value : key;
    }

    private static string Describe(int stem, int growth, IReadOnlyList<int> layers) =>
        $"{stem} initial features, growth rate {growth}, dense layers [{string.Join(", ", layers)}] in denseblock1..{layers.Count}";

    [GeneratedRegex(@"^features\.denseblock(\d+)\.denselayer(\d+)\.")]
    private static partial Regex LayerKey();

    [GeneratedRegex(@"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")]
    private static partial Regex LegacyKey();
}
