using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>The roles a file can play in a model folder.</summary>
public static class ModelFileRoles
{
    /// <summary>All parameters and buffers, as safetensors with <c>backbone.*</c>/<c>head.*</c> names.</summary>
    public const string Weights = "weights";

    /// <summary>The exported, parity-checked ONNX graph that serving runs.</summary>
    public const string Onnx = "onnx";

    /// <summary>
    /// The graph served instead of <see cref="Onnx"/> on a CPU without 8-bit dot products (VNNI, Arm's dot product) when
    /// <see cref="Onnx"/> is an int8 graph with 8-bit weights (<see cref="ModelManifest.PortableGraph"/>).
    /// </summary>
    public const string PortableOnnx = "portableOnnx";

    /// <summary>A float32 CHW mean image that preprocessing subtracts (the ONNX ResNet's).</summary>
    public const string MeanImage = "meanImage";

    /// <summary>The float32 statistics of the training features that the out-of-distribution score reads (<see cref="OutOfDistributionSpec"/>).</summary>
    public const string OutOfDistribution = "outOfDistribution";
}

/// <summary>One file of a model, with the size and hash it must have.</summary>
public sealed record ModelFileEntry(string Role, string Name, long Bytes, string Sha256);

/// <summary>How the model was trained; filled by the training job.</summary>
public sealed record TrainingSummary
{
    /// <summary>Most skipped images listed in <see cref="Skipped"/> (the count is always complete).</summary>
    public const int MaxSkippedListed = 100;

    public string? Mode { get; init; }

    /// <summary>Epochs run (fewer than <see cref="MaxEpochs"/> after early stopping).</summary>
    public int? Epochs { get; init; }
    public int? MaxEpochs { get; init; }
    public int? BestEpoch { get; init; }
    public bool? StoppedEarly { get; init; }

    /// <summary>What the epochs were compared on (<c>calibratedLoss</c>: each epoch's validation loss after its own temperature; <c>loss</c>).</summary>
    public string? EpochSelection { get; init; }

    /// <summary>The start's (epoch 0's) validation loss and calibrated validation loss, the figures every epoch had to beat.</summary>
    public double? StartValidationLoss { get; init; }

    public double? StartCalibratedValidationLoss { get; init; }

    /// <summary>Which epoch was kept and why, in words (its loss against the start's, the difference and the margin it had to clear).</summary>
    public string? KeptEpochReason { get; init; }

    /// <summary>
    /// The plan's interpolation between the start and the mean of the epochs' weights (WiSE-FT; 1: the mean itself); null
    /// when the epochs were candidates one by one.
    /// </summary>
    public double? WeightInterpolation { get; init; }

    /// <summary>How many epochs' weights the kept model averages; null when a single epoch (or the start) was kept.</summary>
    public int? AveragedEpochs { get; init; }
    public int? BatchSize { get; init; }
    public double? LearningRate { get; init; }
    public double? BackboneLrFactor { get; init; }
    public IReadOnlyList<string>? UnfreezeStages { get; init; }
    public double? WeightDecay { get; init; }
    public int? Patience { get; init; }

    /// <summary>Validation fraction of the seeded stratified split; null when train/ and val/ folders were used.</summary>
    public double? ValidationSplit { get; init; }
    public int? Seed { get; init; }
    public string? Device { get; init; }
    public string? Optimizer { get; init; }
    public IReadOnlyDictionary<string, int>? TrainCounts { get; init; }
    public IReadOnlyDictionary<string, int>? ValidationCounts { get; init; }

    /// <summary>Images of the largest class over images of the smallest.</summary>
    public double? ClassImbalanceRatio { get; init; }
    public int? SkippedImages { get; init; }

    /// <summary>The first <see cref="MaxSkippedListed"/> skipped images with the reason.</summary>
    public IReadOnlyList<SkippedImageEntry>? Skipped { get; init; }

    /// <summary>SHA-256 over the sorted list of training files (name and size), to tell which data made the model.</summary>
    public string? DataHash { get; init; }

    /// <summary>Head mode's linear probe (cross-validation, calibration); null for epoch-trained heads.</summary>
    public ProbeSummary? Probe { get; init; }

    /// <summary>How the served probabilities were calibrated; null in models trained before it was recorded.</summary>
    public CalibrationSummary? Calibration { get; init; }
}

/// <summary>An image training left out, and why (an <c>ImageErrorCode</c> name, or Missing, Duplicate or Unlabelled for a manifest row).</summary>
public sealed record SkippedImageEntry(string Source, string Code, string Message);

/// <summary>Validation results recorded with the model.</summary>
public sealed record ValidationMetrics
{
    public double? Accuracy { get; init; }
    public double? Loss { get; init; }
    public int? Samples { get; init; }

    /// <summary>Mean F1 over classes with validation images.</summary>
    public double? MacroF1 { get; init; }

    /// <summary>Expected calibration error (15 bins) of the served (calibrated) probabilities on these samples.</summary>
    public double? ExpectedCalibrationError { get; init; }

    /// <summary>Multi-label: F1 over every (image, label) decision at the labels' thresholds. Absent for a multi-class model.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? MicroF1 { get; init; }

    /// <summary>Multi-label: the mean over labels of the average precision (area under the precision-recall curve). Absent for a multi-class model.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? MeanAveragePrecision { get; init; }

    /// <summary>Multi-label: the share of images whose predicted set of labels is exactly their true set. Absent for a multi-class model.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ExactMatch { get; init; }

    /// <summary>The top-1 confidence of these samples at 0, 5, ..., 100 % (21 values), for <c>trainjob monitor</c>.</summary>
    public IReadOnlyList<double>? ConfidenceQuantiles { get; init; }
}

/// <summary>Whether a model picks one label per image or any number of them.</summary>
public enum ModelKind
{
    /// <summary>One label per image: a softmax over the labels (every model before multi-label existed).</summary>
    MultiClass = 0,

    /// <summary>Zero or more labels per image: one sigmoid per label, each with its own threshold (<see cref="ModelManifest.LabelThresholds"/>).</summary>
    MultiLabel = 1,
}

/// <summary>
/// The one description of a model (docs/architecture.md, "Storage contract"): architecture, labels in output
/// order, preprocessing, training settings and metrics, the default confidence threshold, and each
/// file's name, size and SHA-256. Inference reads everything it needs from here.
/// </summary>
public sealed record ModelManifest
{
    /// <summary>The schema this code writes and the newest it reads.</summary>
    public const int CurrentSchemaVersion = 1;

    public const string FileName = "manifest.json";

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>The published version id; null until the model is published.</summary>
    public string? Version { get; init; }

    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>Backbone id: <c>onnx-resnet18</c> (the default), <c>resnet18</c>, <c>resnet34</c> or <c>resnet50</c>.</summary>
    public required string Backbone { get; init; }

    /// <summary>Where the pretrained backbone weights came from, for people.</summary>
    public string? BackboneSource { get; init; }

    public required HeadSpec Head { get; init; }

    /// <summary>Class labels in output order.</summary>
    public required IReadOnlyList<string> Labels { get; init; }

    public required PreprocessingConfig Preprocessing { get; init; }

    /// <summary>Below this top-1 probability a prediction is reported as <c>unknown</c>; 0 disables. Not used by a multi-label model (see <see cref="LabelThresholds"/>).</summary>
    public double ConfidenceThreshold { get; init; }

    /// <summary>Multi-class (absent from the JSON, as before multi-label existed) or multi-label.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public ModelKind Kind { get; init; }

    /// <summary>
    /// A multi-label model's threshold per label, in <see cref="Labels"/> order: a label is predicted when its probability is at
    /// or above its threshold. Chosen on out-of-fold predictions at training. Null for a multi-class model.
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<double>? LabelThresholds { get; init; }

    /// <summary>
    /// Thresholds of their own for some classes (<c>train --class-thresholds</c>), chosen on out-of-fold predictions; a class
    /// not listed uses <see cref="ConfidenceThreshold"/>. Null: the single threshold for every class (the default).
    /// </summary>
    public ClassThresholdSpec? ClassThresholds { get; init; }

    /// <summary>The threshold a top-1 answer of <paramref name="label"/> must reach: its own, else the single one.</summary>
    public double ThresholdFor(string label) =>
        ClassThresholds is { } own && own.Thresholds.TryGetValue(label, out var threshold) ? threshold : ConfidenceThreshold;

    public TrainingSummary? Training { get; init; }

    public ValidationMetrics? Metrics { get; init; }

    /// <summary>The out-of-distribution statistics and their calibration; null in models trained before they were recorded (no score then).</summary>
    public OutOfDistributionSpec? OutOfDistribution { get; init; }

    /// <summary>
    /// Custom Vision tag ids by label, when the model was trained from a Custom Vision export (its <c>&lt;manifest&gt;.tags.json</c>,
    /// <see cref="Data.DataManifestInfo.TagIds"/>): the Custom Vision-compatible API answers with these, so clients keep matching
    /// on their project's tag ids. Null otherwise (the API then derives stable ids).
    /// </summary>
    public IReadOnlyDictionary<string, Guid>? CustomVisionTagIds { get; init; }

    /// <summary>The precision of the served graph (<c>model.onnx</c>); manifests written before int8 existed are fp32.</summary>
    public ModelPrecision Precision { get; init; } = ModelPrecision.Fp32;

    /// <summary>The int8 check (whenever an int8 graph was made, served or not); null when none was made.</summary>
    public QuantizationSummary? Quantization { get; init; }

    /// <summary>
    /// The graph a CPU without 8-bit dot products serves instead of <c>model.onnx</c> when that is an int8 graph with 8-bit
    /// weights (whose integer sums can saturate there): the 7-bit int8 graph made with the same ranges and checked the same
    /// way, or the fp32 graph when that did not pass its check. Null (absent) in every other model, and in models made
    /// before it existed (<see cref="ServedGraph.Choose"/>).
    /// </summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PortableGraphSpec? PortableGraph { get; init; }

    /// <summary>The fp32 export's check against the trained model; null in models saved before it was recorded.</summary>
    public ExportVerification? Verification { get; init; }

    public IReadOnlyList<ModelFileEntry> Files { get; init; } = [];

    public ModelFileEntry? FindFile(string role) => Files.FirstOrDefault(f => f.Role == role);

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
    };

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    /// <summary>Reading: <see cref="JsonOptions"/>, and a null where the type allows none (<c>"labels": null</c>) is a schema error, not a later NullReferenceException.</summary>
    private static readonly JsonSerializerOptions StrictReadOptions = new(JsonOptions) { RespectNullableAnnotations = true, RespectRequiredConstructorParameters = true };

    /// <summary>Parses and validates a manifest; every problem is a <see cref="ModelFormatException"/> naming it.</summary>
    public static ModelManifest Parse(ReadOnlySpan<byte> json, string source)
    {
        // Tolerate a UTF-8 byte order mark (editors on Windows add one).
        if (json.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            json = json[3..];
        }
        int schema;
        try
        {
            using var document = JsonDocument.Parse(json.ToArray());
            schema = document.RootElement.TryGetProperty("schemaVersion", out var s) && s.TryGetInt32(out var v) ? v : 0;
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{source}: manifest is not valid JSON ({e.Message}).", e);
        }
        if (schema < 1 || schema > CurrentSchemaVersion)
        {
            throw new ModelFormatException(
                $"{source}: manifest schemaVersion {schema} is not supported; this build reads 1..{CurrentSchemaVersion}. " +
                "A newer schema needs a newer build of ServerlessClassifier.");
        }
        ModelManifest manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<ModelManifest>(json, StrictReadOptions)
                ?? throw new ModelFormatException($"{source}: manifest is empty.");
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{source}: manifest does not match schema {schema} ({e.Message}).", e);
        }
        manifest.Validate(source);
        return manifest;
    }

    /// <summary>Checks the invariants every reader relies on.</summary>
    public void Validate(string source)
    {
        if (Labels.Count != Head.NumClasses)
        {
            throw new ModelFormatException($"{source}: {Labels.Count} labels but the head has {Head.NumClasses} outputs.");
        }
        foreach (var label in Labels)
        {
            if (string.IsNullOrWhiteSpace(label) || label.Length > 200 || label.Any(char.IsControl))
            {
                throw new ModelFormatException($"{source}: label {JsonSerializer.Serialize(label)} is empty, longer than 200 characters or contains control characters.");
            }
        }
        var duplicate = Labels.GroupBy(l => l, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new ModelFormatException($"{source}: label \"{duplicate.Key}\" appears more than once.");
        }
        foreach (var file in Files)
        {
            if (file is null)
            {
                throw new ModelFormatException($"{source}: files lists a null entry.");
            }
            if (!IsPlainFileName(file.Name))
            {
                throw new ModelFormatException($"{source}: file name {JsonSerializer.Serialize(file.Name)} is not a plain file name.");
            }
            if (file.Bytes < 0 || file.Sha256.Length != 64 || !file.Sha256.All(Uri.IsHexDigit))
            {
                throw new ModelFormatException($"{source}: file {file.Name} has an invalid size or SHA-256.");
            }
        }
        if (FindFile(ModelFileRoles.Weights) is null && FindFile(ModelFileRoles.Onnx) is null)
        {
            throw new ModelFormatException($"{source}: the manifest lists neither weights nor an ONNX graph.");
        }
        if (Preprocessing.MeanImageFile is { } mean && Files.All(f => f.Name != mean))
        {
            throw new ModelFormatException($"{source}: preprocessing names mean image {mean}, which is not among the files.");
        }
        if (OutOfDistribution is { } ood && (FindFile(ModelFileRoles.OutOfDistribution)?.Name != ood.File || ood.Method != OutOfDistributionSpec.MahalanobisLowRank
            || ood.Features < 1 || ood.Components < 0 || ood.Components > ood.Features || !(ood.ResidualVariance > 0) || !(ood.Cutoff > 0)))
        {
            throw new ModelFormatException($"{source}: outOfDistribution is not a {OutOfDistributionSpec.MahalanobisLowRank} section with positive figures whose file {ood.File} is listed with role {ModelFileRoles.OutOfDistribution}.");
        }
        if (!Enum.IsDefined(Precision))
        {
            throw new ModelFormatException($"{source}: precision {Precision} is unknown.");
        }
        if (PortableGraph is { } portable)
        {
            portable.Validate(this, source);
        }
        if (!Enum.IsDefined(Kind))
        {
            throw new ModelFormatException($"{source}: kind {Kind} is unknown.");
        }
        if ((Kind == ModelKind.MultiLabel) != Head.MultiLabel)
        {
            throw new ModelFormatException($"{source}: the manifest's kind is {Kind} but the head is {(Head.MultiLabel ? "" : "not ")}multi-label.");
        }
        if (Kind == ModelKind.MultiLabel
            ? LabelThresholds is null || LabelThresholds.Count != Labels.Count || LabelThresholds.Any(t => !(t is >= 0 and <= 1))
            : LabelThresholds is not null)
        {
            throw new ModelFormatException($"{source}: a multi-label model needs labelThresholds, one from 0 to 1 per label ({Labels.Count}); a multi-class model has none.");
        }
        if (ConfidenceThreshold is < 0 or > 1 || double.IsNaN(ConfidenceThreshold))
        {
            throw new ModelFormatException($"{source}: confidenceThreshold {ConfidenceThreshold} is outside 0..1.");
        }
        if (ClassThresholds is { } own)
        {
            if (string.IsNullOrWhiteSpace(own.Goal) || own.Thresholds is null)
            {
                throw new ModelFormatException($"{source}: classThresholds needs a goal and a thresholds object.");
            }
            foreach (var (label, threshold) in own.Thresholds)
            {
                if (!Labels.Contains(label, StringComparer.Ordinal) || threshold is < 0 or > 1 || double.IsNaN(threshold))
                {
                    throw new ModelFormatException($"{source}: classThresholds names {JsonSerializer.Serialize(label)} with {threshold}: every entry must be one of the labels with a threshold in 0..1.");
                }
            }
        }
    }

    /// <summary>The largest manifest read (1 MiB; a real one is a few kilobytes): a larger one is refused before it is read.</summary>
    public const int MaxBytes = 1024 * 1024;

    /// <summary>A name that cannot leave its folder: no separators, no dot segments, no control characters.</summary>
    public static bool IsPlainFileName(string name) =>
        !string.IsNullOrWhiteSpace(name) && name.Length <= 255 && name is not "." and not ".."
        && name.IndexOfAny(['/', '\\', ':']) < 0 && !name.Any(char.IsControl);
}

/// <summary>
/// Per-class thresholds: how they were chosen (<c>f1</c>, or <c>precision=P</c>) and each listed class's threshold; classes
/// not listed keep the model's single threshold.
/// </summary>
public sealed record ClassThresholdSpec(string Goal, IReadOnlyDictionary<string, double> Thresholds);

/// <summary>A model folder or manifest that cannot be used, with a message naming what is wrong.</summary>
public sealed class ModelFormatException : Exception
{
    public ModelFormatException(string message) : base(message)
    {
    }

    public ModelFormatException(string message, Exception inner) : base(message, inner)
    {
    }
}
