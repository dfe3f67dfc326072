namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>The one map from a manifest's backbone id to the module that implements it.</summary>
public static class BackboneCatalog
{
    /// <summary>The default backbone: the ImageNet ResNet-18 from Microsoft.ML.DnnImageFeaturizer.ResNet18.</summary>
    public static string DefaultId => ResNetArchitecture.OnnxResNet18.Name;

    public static IReadOnlyList<string> Ids { get; } = [.. ResNetArchitecture.All.Select(a => a.Name)];

    public static ResNetArchitecture Architecture(string id) =>
        ResNetArchitecture.All.FirstOrDefault(a => a.Name == id)
        ?? throw new ArgumentException($"Unknown backbone \"{id}\"; known: {string.Join(", ", Ids)}.", nameof(id));

    /// <summary>A randomly initialised backbone of the given id (weights are loaded afterwards).</summary>
    public static TorchVisionResNet Create(string id) => new(Architecture(id));
}
