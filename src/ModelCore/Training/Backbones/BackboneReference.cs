using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>What a backbone reference names.</summary>
public enum BackboneSource
{
    /// <summary>The ImageNet ResNet-18 that ships with the product (<see cref="BackboneCatalog.DefaultId"/>).</summary>
    Default,

    /// <summary>A torchvision <c>state_dict</c> file (.pth or .safetensors); the architecture is detected from its keys and shapes.</summary>
    WeightsFile,

    /// <summary>A registry architecture with random weights (<c>random:&lt;id&gt;</c>): for tests, never by accident.</summary>
    Random,
}

/// <summary>
/// The one reading of a plan's backbone (<c>--backbone</c>): <c>onnx-resnet18</c>, the path of a torchvision weights
/// file, or <c>random:&lt;id&gt;</c>. A bare architecture id is refused, so nobody trains on random weights by accident.
/// </summary>
public sealed record BackboneReference(BackboneSource Source, string Value, BackboneArchitecture Architecture)
{
    /// <summary>Prefix of a reference that asks for random weights (<c>random:resnet18</c>).</summary>
    public const string RandomPrefix = "random:";

    /// <summary>The reference as a plan stores it: the default's id, the weights file's full path, or <c>random:&lt;id&gt;</c>.</summary>
    public override string ToString() => Source switch
    {
        BackboneSource.Random => RandomPrefix + Value,
        _ => Value,
    };

    /// <summary>Reads a reference; a weights file's keys and shapes are read (not its tensors) to know its architecture.</summary>
    /// <exception cref="PlanException">Not a reference this product reads; the message says what would be.</exception>
    public static BackboneReference Parse(string? text)
    {
        const string setting = "backbone";
        if (string.IsNullOrWhiteSpace(text) || text == BackboneCatalog.DefaultId)
        {
            return new BackboneReference(BackboneSource.Default, BackboneCatalog.DefaultId, BackboneCatalog.Architecture(BackboneCatalog.DefaultId));
        }
        if (text.StartsWith(RandomPrefix, StringComparison.Ordinal))
        {
            var id = text[RandomPrefix.Length..];
            return BackboneCatalog.TorchVisionIds.Contains(id, StringComparer.Ordinal)
                ? new BackboneReference(BackboneSource.Random, id, BackboneCatalog.Architecture(id))
                : throw new PlanException(setting, $"Backbone {text}: random initialisation takes {RandomPrefix}<id> with an id of {string.Join(", ", BackboneCatalog.TorchVisionIds)}.");
        }
        if (File.Exists(text))
        {
            var path = Path.GetFullPath(text);
            return new BackboneReference(BackboneSource.WeightsFile, path, TorchVisionWeights.DetectArchitecture(path));
        }
        if (BackboneCatalog.Ids.Contains(text, StringComparer.Ordinal))
        {
            throw new PlanException(setting,
                $"Backbone {text} names an architecture without pretrained weights. Pass {BackboneCatalog.DefaultId} (ImageNet, the default) or the path of a torchvision {text} " +
                $"weights file (.pth or .safetensors); {RandomPrefix}{text} trains on random weights (tests only).");
        }
        throw new PlanException(setting, $"Backbone \"{text}\" is neither {BackboneCatalog.DefaultId} nor an existing weights file (.pth or .safetensors).");
    }
}
