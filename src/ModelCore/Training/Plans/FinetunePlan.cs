using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Backbones;

namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>
/// Finetune mode: the named stages and the head train (the stages at <see cref="EpochPlan.BackboneLrFactor"/> x the head's
/// rate); every other stage stays frozen, BatchNorm statistics included. On a ResNet whose first trained stage is after
/// layer1 the frozen prefix runs once per image and view and is cached (<see cref="PrefixViews"/>), and the head is
/// fitted again as a linear probe on the kept backbone at the end (<see cref="RefitHead"/>).
/// </summary>
public sealed record FinetunePlan : EpochPlan
{
    [JsonIgnore]
    public override TrainingMode Mode => TrainingMode.Finetune;

    /// <summary>
    /// The stages that train, by name, in network order (ResNet <c>layer1</c>..<c>layer4</c>; VGG <c>block1</c>..<c>block5</c>
    /// and <c>classifier</c>; AlexNet <c>block1</c>..<c>block3</c> and <c>classifier</c>; DenseNet <c>denseblock1</c>..<c>4</c>).
    /// Empty: the last stage.
    /// </summary>
    [Setting("unfrozen stages")]
    public IReadOnlyList<string> Stages { get; init; } = [];

    /// <summary>
    /// Fixed views of each training image whose frozen-prefix outputs are computed once (on ONNX Runtime) and cached on
    /// disk: view 0 the image as served, the others augmented; each epoch trains every image on one of them. Null: 4
    /// where the prefix can be cached (a ResNet whose first unfrozen stage is after layer1), else 0. 0: the whole network
    /// runs on freshly augmented images every batch.
    /// </summary>
    [Setting("cached prefix views")]
    public int? PrefixViews { get; init; }

    /// <summary>
    /// After the epochs, fit the head again as head mode fits it, on the kept backbone's features of every image; the L2
    /// strength, temperature and reported figures come from the images the backbone never trained on. Needs the cached
    /// prefix. Null: yes where the prefix is cached.
    /// </summary>
    [Setting("head refit")]
    public bool? RefitHead { get; init; }

    /// <summary>
    /// Hand the cached prefix outputs to the trained stages in channels-last memory order, so libtorch's CPU convolutions take
    /// their oneDNN channels-last kernels: on a 2-core machine the epochs trained 1.06-1.15x faster when it was quiet (1.5x
    /// under load). Off by default: the kernels round differently, and over the epochs that moves the losses in their third
    /// or fourth digit, which on 2,020 emoji moved the early stop (docs/benchmarks.md, "Channels-last suffix"). Needs the cached prefix.
    /// </summary>
    [Setting("channels-last suffix")]
    public bool ChannelsLastSuffix { get; init; }

    /// <summary>True when the resolved plan trains on the cached frozen prefix.</summary>
    [JsonIgnore]
    public bool CachesPrefix => PrefixViews > 0;

    /// <summary>The 0-based index of the first unfrozen stage among the architecture's stages.</summary>
    public int FirstStage(BackboneArchitecture architecture)
    {
        ArgumentNullException.ThrowIfNull(architecture);
        return architecture.StageNames.Select((name, index) => (name, index)).First(s => Stages.Contains(s.name)).index;
    }

    private protected override EpochPlan ResolveStages(BackboneArchitecture architecture)
    {
        var names = architecture.StageNames;
        IReadOnlyList<string> stages = Stages.Count == 0 ? [names[^1]] : Stages;
        var unknown = stages.FirstOrDefault(s => !names.Contains(s, StringComparer.Ordinal));
        Require(unknown is null, "unfrozen stages", $"Unfrozen stage \"{unknown}\" is not a stage of {architecture.Name}; its stages are {string.Join(", ", names)}.");
        Require(stages.Distinct(StringComparer.Ordinal).Count() == stages.Count, "unfrozen stages", $"Unfrozen stages {string.Join(",", stages)}: a stage is named twice.");
        var resolved = this with { Stages = [.. names.Where(stages.Contains)] };
        var cacheable = CanCachePrefix(architecture, resolved.FirstStage(architecture), PooledStages ?? 1);
        var views = PrefixViews ?? (cacheable ? 4 : 0);
        Require(views is >= 0 and <= 64, "cached prefix views", $"Cached prefix views {views}: 0..64.");
        Require(views == 0 || cacheable, "cached prefix views",
            $"Cached prefix views {views}: the frozen prefix is cached only on a ResNet whose first unfrozen stage is after layer1 and before the stages its head pools ({architecture.Name}, from {names[resolved.FirstStage(architecture)]}); use 0.");
        Require(!ChannelsLastSuffix || views > 0, "channels-last suffix", "Channels-last suffix: needs the cached prefix (cached prefix views above 0).");
        var refit = RefitHead ?? views > 0;
        Require(!refit || views > 0, "head refit", "Head refit: needs the cached prefix (cached prefix views above 0).");
        return resolved with { PrefixViews = views, RefitHead = refit };
    }

    /// <summary>
    /// A ResNet whose first trained stage is not the first, and whose head pools no stage output before the prefix's own
    /// (the prefix output counts as the output of the stage before the first trained one).
    /// </summary>
    private static bool CanCachePrefix(BackboneArchitecture architecture, int first, int pooledStages) =>
        architecture is ResNetArchitecture && first >= 1 && pooledStages <= architecture.StageNames.Count - first + 1;
}
