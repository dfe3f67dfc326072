using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Contracts;

// The prediction document, predictions/<name>.json, and (without the blob fields image and source)
// the body of a successful POST /api/classify. ModelCore will get the same record as
// Inference/PredictionDocument.cs (another branch); the JSON names here are that contract, camelCase.

/// <summary>One label of the ranking.</summary>
public sealed record PredictionLabel(
    [property: JsonPropertyName("label")] string Label,
    [property: JsonPropertyName("probability")] double Probability);

/// <summary>Milliseconds per step; a batch's forward pass is shared out over its images.</summary>
public sealed record PredictionTimings(
    [property: JsonPropertyName("decodeMs")] double DecodeMs,
    [property: JsonPropertyName("preprocessMs")] double PreprocessMs,
    [property: JsonPropertyName("inferenceMs")] double InferenceMs);

/// <summary>Why an input was refused: a stable code (<see cref="ImageErrorCode"/> names) and a message for people.</summary>
public sealed record PredictionError(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message);

/// <summary>The result for one image.</summary>
public sealed record PredictionResult
{
    public const string StatusOk = "ok";
    public const string StatusRejected = "rejected";

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    /// <summary><c>ok</c> or <c>rejected</c>.</summary>
    [JsonPropertyName("status")]
    public required string Status { get; init; }

    /// <summary>The image's blob name (blob results only).</summary>
    [JsonPropertyName("image"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Image { get; init; }

    [JsonPropertyName("modelVersion")]
    public string? ModelVersion { get; init; }

    /// <summary>The decision: the top label, or <c>unknown</c> below the threshold.</summary>
    [JsonPropertyName("label"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Label { get; init; }

    [JsonPropertyName("confidence"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Confidence { get; init; }

    [JsonPropertyName("isUnknown"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? IsUnknown { get; init; }

    [JsonPropertyName("threshold"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Threshold { get; init; }

    [JsonPropertyName("top"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PredictionLabel>? Top { get; init; }

    [JsonPropertyName("timings"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PredictionTimings? Timings { get; init; }

    [JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PredictionError? Error { get; init; }

    [JsonPropertyName("classifiedUtc")]
    public DateTimeOffset ClassifiedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>What produced a blob result: <c>blobTrigger</c>, <c>eventGrid</c> or <c>sweep</c> (blob results only).</summary>
    [JsonPropertyName("source"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Source { get; init; }

    public static PredictionResult Ok(Classification classification, string modelVersion)
    {
        ArgumentNullException.ThrowIfNull(classification);
        return new PredictionResult
        {
            Status = StatusOk,
            ModelVersion = modelVersion,
            Label = classification.Label,
            Confidence = classification.Confidence,
            IsUnknown = classification.IsUnknown,
            Threshold = classification.Threshold,
            Top = [.. classification.Top.Select(t => new PredictionLabel(t.Label, t.Probability))],
            Timings = new PredictionTimings(classification.Timings.DecodeMs, classification.Timings.PreprocessMs, classification.Timings.InferenceMs),
        };
    }

    public static PredictionResult Rejected(ImageRejectedException error, string? modelVersion)
    {
        ArgumentNullException.ThrowIfNull(error);
        return new PredictionResult
        {
            Status = StatusRejected,
            ModelVersion = modelVersion,
            Error = new PredictionError(error.Code.ToString(), error.Message),
        };
    }
}

/// <summary>Values of <see cref="PredictionResult.Source"/>.</summary>
public static class PredictionSources
{
    public const string BlobTrigger = "blobTrigger";
    public const string EventGrid = "eventGrid";
    public const string Sweep = "sweep";
}
