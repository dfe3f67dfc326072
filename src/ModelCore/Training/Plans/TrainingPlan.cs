using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>What trains.</summary>
public enum TrainingMode
{
    /// <summary>The backbone is frozen; its features are computed once and a linear probe is fitted on them (<see cref="HeadPlan"/>).</summary>
    Head,

    /// <summary>The named stages and the head train; the other stages stay frozen (<see cref="FinetunePlan"/>).</summary>
    Finetune,

    /// <summary>Everything trains, with learning rates that shrink towards the input (<see cref="FullPlan"/>).</summary>
    Full,
}

/// <summary>
/// What a training run does, resolved once from what the user asked (<see cref="Resolve"/>), printed at the start, stored
/// with the run's checkpoint and the one thing <c>--resume</c> compares (<see cref="PlanSettings.Differences"/>). One type
/// per mode, each holding only the settings that mean something for it; defaults are the PyTorch transfer-learning recipe
/// on a small data set. Stored as JSON (<see cref="ToJson"/>, <see cref="FromJson"/>) with its mode as the discriminator.
/// How a run executes (device, checkpoint folder, feature batch size) is not part of it: that changes no result.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "mode")]
[JsonDerivedType(typeof(HeadPlan), "head")]
[JsonDerivedType(typeof(FinetunePlan), "finetune")]
[JsonDerivedType(typeof(FullPlan), "full")]
public abstract record TrainingPlan
{
    /// <summary>Plans as files: camelCase, enums by name, an unknown setting is an error (a typo must not be ignored).</summary>
    public static JsonSerializerOptions JsonOptions { get; } = new(ModelManifest.JsonOptions)
    {
        AllowOutOfOrderMetadataProperties = true,
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    [JsonIgnore]
    public abstract TrainingMode Mode { get; }

    /// <summary>Where the labelled images are, as given: a folder, <c>container[/prefix]</c> or a manifest file (the engine records it; the caller reads it).</summary>
    [Setting("data")]
    public string Data { get; init; } = "";

    /// <summary>A manifest's <c>FROM=TO</c> prefix rewrites, as given.</summary>
    [Setting("manifest prefix rewrites")]
    public IReadOnlyList<string> RewritePrefixes { get; init; } = [];

    /// <summary>A <see cref="BackboneReference"/>: <c>onnx-resnet18</c>, a torchvision weights file, or <c>random:&lt;id&gt;</c> (tests only).</summary>
    [Setting("backbone")]
    public string Backbone { get; init; } = BackboneCatalog.DefaultId;

    /// <summary>The backbone's architecture id (set by <see cref="Resolve"/>; a weights file's is read from its keys and shapes).</summary>
    [Setting("architecture")]
    public string? Architecture { get; init; }

    /// <summary>The square input side; null: 224. <c>onnx-resnet18</c> takes 224 only, AlexNet at least 63, the others at least 32.</summary>
    [Setting("input size")]
    public int? InputSize { get; init; }

    /// <summary>
    /// The head reads the pooled outputs of the last this-many stages, concatenated, last stage first. Null: 2 for a ResNet
    /// (layer4 and layer3: 768 features for ResNet-18), 1 for the others (their heads read what the replaced layer read).
    /// </summary>
    [Setting("pooled stages")]
    public int? PooledStages { get; init; }

    /// <summary>Seeds the split, every initialisation, shuffle and augmentation, the folds and the int8 calibration sample.</summary>
    [Setting("seed")]
    public int Seed { get; init; } = 42;

    /// <summary>Fraction of each class held out for validation (unless the data fixes the split with train/ and val/ or a manifest's column).</summary>
    [Setting("validation split")]
    public double ValSplit { get; init; } = 0.2;

    /// <summary>The graph the model serves and how an int8 graph is made and checked.</summary>
    /// <summary>
    /// A multi-label model (one sigmoid per label, zero or more labels per image): true asks for one; null (the default)
    /// trains one when the data is multi-label (<see cref="Data.DatasetOptions.MultiLabel"/>). Head mode, or finetune on the cached prefix with a binary loss; not full.
    /// </summary>
    [Setting("multi-label")]
    public bool? MultiLabel { get; init; }

    /// <summary>Multi-label: each label's threshold is the lowest whose out-of-fold precision reaches this (0..1); null: the threshold of best F1.</summary>
    [Setting("target precision")]
    public double? TargetPrecision { get; init; }

    [Setting("precision")]
    public PrecisionOptions Precision { get; init; } = new();

    /// <summary>
    /// How classes get thresholds of their own (<see cref="ThresholdGoal"/>: <c>f1</c> or <c>precision=P</c>), chosen on the
    /// out-of-fold or validation predictions; null: one threshold for every class (the default).
    /// </summary>
    [Setting("class thresholds")]
    public string? ClassThresholds { get; init; }

    /// <summary>The goal <see cref="ClassThresholds"/> names; null when classes share one threshold.</summary>
    public ThresholdGoal? ClassThresholdGoal() => ClassThresholds is { } text ? ThresholdGoal.Parse(text) : null;

    /// <summary>The backbone reference this plan names (its weights file's keys and shapes are read).</summary>
    public BackboneReference ParseBackbone() => Backbones.BackboneReference.Parse(Backbone);

    /// <summary>
    /// The plan as it will run: the backbone reference normalised (a weights file's full path) and its architecture
    /// read; the input size, pooled stages and every mode-specific default that depends on the architecture filled in;
    /// every value checked. Resolving a resolved plan gives it back unchanged.
    /// </summary>
    /// <exception cref="PlanException">A value out of range, or a setting the mode or the backbone cannot honour, named.</exception>
    public TrainingPlan Resolve()
    {
        var reference = ParseBackbone();
        var architecture = reference.Architecture;
        if (Architecture is { } recorded && recorded != architecture.Name)
        {
            throw new PlanException("architecture", $"The plan says the backbone is a {recorded}, but {Backbone} is a {architecture.Name} now.");
        }
        var size = InputSize ?? 224;
        if (architecture.InputSizeProblem(size) is { } problem)
        {
            throw new PlanException("input size", $"Input size {size}: {problem}.");
        }
        var pooled = PooledStages ?? Math.Min(2, architecture.MaxPooledStages);
        Require(pooled >= 1, "pooled stages", $"Pooled stages {pooled}: must be at least 1.");
        Require(pooled <= architecture.MaxPooledStages, "pooled stages",
            $"Pooled stages {pooled}: only ResNets pool several stages; a {architecture.Name} head reads the {architecture.NumFeatures} inputs of {architecture.ReplacedLayer}, the layer it replaces.");
        Require(ValSplit is > 0 and < 1, "validation split", $"Validation split {ValSplit}: must be between 0 and 1 (exclusive).");
        Precision.Validate();
        Require(TargetPrecision is null or (> 0 and <= 1), "target precision", $"Target precision {TargetPrecision}: must be above 0 and at most 1.");
        string? classThresholds;
        try
        {
            classThresholds = ClassThresholdGoal()?.ToString();
        }
        catch (FormatException e)
        {
            throw new PlanException("class thresholds", e.Message);
        }
        var resolved = this with { Backbone = reference.ToString(), Architecture = architecture.Name, InputSize = size, PooledStages = pooled, ClassThresholds = classThresholds };
        return resolved.ResolveMode(architecture);
    }

    /// <summary>The mode's own settings checked and filled in for the architecture.</summary>
    private protected abstract TrainingPlan ResolveMode(BackboneArchitecture architecture);

    /// <summary>The resolved input side (224 before <see cref="Resolve"/>).</summary>
    [JsonIgnore]
    public int EffectiveInputSize => InputSize ?? 224;

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>A plan from its JSON (<see cref="ToJson"/>, or written by hand).</summary>
    /// <exception cref="PlanException">Not a plan: the message says why.</exception>
    public static TrainingPlan FromJson(string json)
    {
        try
        {
            return JsonSerializer.Deserialize<TrainingPlan>(json, JsonOptions) ?? throw new PlanException("plan", "The plan is empty.");
        }
        catch (JsonException e)
        {
            throw new PlanException("plan", $"Not a training plan: {e.Message}");
        }
        catch (NotSupportedException e)
        {
            throw new PlanException("plan", $"Not a training plan (it needs \"mode\": \"head\", \"finetune\" or \"full\"): {e.Message}");
        }
    }

    /// <summary>The default plan of a mode.</summary>
    public static TrainingPlan For(TrainingMode mode) => mode switch
    {
        TrainingMode.Head => new HeadPlan(),
        TrainingMode.Finetune => new FinetunePlan(),
        TrainingMode.Full => new FullPlan(),
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "Unknown mode."),
    };

    private protected static void Require(bool ok, string setting, string message)
    {
        if (!ok)
        {
            throw new PlanException(setting, message);
        }
    }
}
