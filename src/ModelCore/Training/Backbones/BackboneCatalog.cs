namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// The architecture registry: the one map from a manifest's backbone id to its entry
/// (<see cref="BackboneArchitecture"/>), and the detection of an architecture from a torchvision
/// <c>state_dict</c>'s keys and shapes.
/// </summary>
public static class BackboneCatalog
{
    /// <summary>The default backbone: the ImageNet ResNet-18 from Microsoft.ML.DnnImageFeaturizer.ResNet18.</summary>
    public static string DefaultId => ResNetArchitecture.OnnxResNet18.Name;

    /// <summary>Every entry: torchvision's ResNets, VGGs, AlexNet and DenseNets, then the default ONNX ResNet-18.</summary>
    public static IReadOnlyList<BackboneArchitecture> All { get; } =
    [
        .. ResNetArchitecture.TorchVision,
        .. VggArchitecture.TorchVision,
        AlexNetArchitecture.AlexNet,
        .. DenseNetArchitecture.TorchVision,
        ResNetArchitecture.OnnxResNet18,
    ];

    public static IReadOnlyList<string> Ids { get; } = [.. All.Select(a => a.Name)];

    /// <summary>The torchvision architectures (those a <c>state_dict</c> is imported as), by id.</summary>
    public static IReadOnlyList<string> TorchVisionIds { get; } = [.. Ids.Where(id => id != DefaultId)];

    public static BackboneArchitecture Architecture(string id) =>
        All.FirstOrDefault(a => a.Name == id)
        ?? throw new ArgumentException($"Unknown backbone \"{id}\"; known: {string.Join(", ", Ids)}.", nameof(id));

    /// <summary>A randomly initialised backbone of the given id (weights are loaded afterwards).</summary>
    public static Backbone Create(string id) => Architecture(id).Create();

    /// <summary>The entry whose layout a torchvision <c>state_dict</c> (names to shapes) describes; null when none does.</summary>
    public static BackboneArchitecture? Detect(IReadOnlyDictionary<string, long[]> stateDictShapes) =>
        All.FirstOrDefault(a => a.Matches(stateDictShapes));

    /// <summary>What the keys describe in the terms of each family that recognises them (for an error message); empty when none does.</summary>
    public static IReadOnlyList<string> FoundLayouts(IReadOnlyDictionary<string, long[]> stateDictShapes) =>
        [.. All.Select(a => a.FoundLayout(stateDictShapes)).OfType<string>().Distinct(StringComparer.Ordinal)];
}
