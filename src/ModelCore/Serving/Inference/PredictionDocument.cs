using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>Values of <see cref="PredictionDocument.Status"/>.</summary>
public static class PredictionStatus
{
    /// <summary>The image was classified.</summary>
    public const string Ok = "ok";

    /// <summary>The image could not be used; <see cref="PredictionDocument.Error"/> says why.</summary>
    public const string Rejected = "rejected";
}

/// <summary>Values of <see cref="PredictionDocument.Source"/>: what produced the prediction.</summary>
public static class PredictionSource
{
    public const string BlobTrigger = "blobTrigger";
    public const string EventGrid = "eventGrid";
    public const string Sweep = "sweep";
    public const string Backfill = "backfill";
    public const string Shard = "shard";
    public const string Http = "http";
}

/// <summary>Where the time of one classification went, in milliseconds.</summary>
public sealed record PredictionTimings(
    [property: JsonPropertyName("decodeMs")] double DecodeMs,
    [property: JsonPropertyName("preprocessMs")] double PreprocessMs,
    [property: JsonPropertyName("inferenceMs")] double InferenceMs);

/// <summary>Why an image was rejected: a stable code (an <see cref="ImageErrorCode"/> name) and a message for people.</summary>
public sealed record PredictionError(
    [property: JsonPropertyName("code")] string Code,
    [property: JsonPropertyName("message")] string Message);

/// <summary>
/// The prediction stored as <c>predictions/&lt;image name&gt;.json</c> for every image (by the Functions app's
/// triggers and sweep, and by TrainJob's <c>classify --container</c> backfill), and returned by the HTTP API.
/// One definition, so every writer and reader agrees on the shape (camelCase JSON):
/// <code>
/// { "status": "ok", "image": "cats/1.jpg", "imageVersion": "0x8DC1A2B3C4D5E6F", "modelVersion": "20250101-120000-ab12cd",
///   "label": "cat", "confidence": 0.97, "isUnknown": false, "threshold": 0.5, "outOfDistribution": 0.62,
///   "top": [{ "label": "cat", "probability": 0.97 }, ...],
///   (a multi-label model's only:) "labels": [{ "label": "cat", "probability": 0.97, "threshold": 0.41 }, ...], "thresholdMargin": 0.12,
///   "timings": { "decodeMs": 3.1, "preprocessMs": 1.2, "inferenceMs": 28.0 },
///   "classifiedUtc": "2025-01-01T12:00:00+00:00", "source": "blobTrigger" }
/// </code>
/// A rejected image has <c>"status": "rejected"</c>, <c>"error": { "code": "Corrupt", "message": "..." }</c>,
/// no label, top or timings. An unknown decision says why in <c>unknownReason</c> (<see cref="UnknownReasons"/>).
/// <c>outOfDistribution</c> is absent for models without feature statistics (and in older documents, which stay
/// readable). Null members are omitted. The body of a successful <c>POST /api/classify</c> is the
/// same document without the blob fields <c>image</c> and <c>source</c> (<see cref="ForResponse"/>). The names and
/// null handling are on the members, so any serializer (e.g. the Functions app's MVC formatter) writes this shape.
/// </summary>
public sealed record PredictionDocument
{
    /// <summary>Suffix appended to the image blob's name to name its prediction blob.</summary>
    public const string BlobSuffix = ".json";

    /// <summary>The most characters a blob name may have in Azure Storage (Azurite does not enforce it).</summary>
    public const int MaxBlobNameLength = 1024;

    /// <summary>
    /// The longest image name whose prediction, <c>&lt;name&gt;.json</c>, is still a valid blob name (1,019 characters):
    /// an image with a longer name (1,020 to 1,024 characters) can never have a prediction.
    /// </summary>
    public const int MaxImageNameLength = MaxBlobNameLength - 5; // BlobSuffix.Length

    [JsonPropertyName("status")]
    public required string Status { get; init; }

    /// <summary>The image blob's name (relative to the images container); null in an HTTP response.</summary>
    [JsonPropertyName("image"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public required string? Image { get; init; }

    /// <summary>
    /// The version of the image blob this prediction describes (its ETag when it was read); null in an HTTP
    /// response and in predictions written before versions were recorded. A blob whose ETag differs was
    /// replaced after it was classified, so it is classified again (<c>PredictionUpdater</c>).
    /// </summary>
    [JsonPropertyName("imageVersion"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? ImageVersion { get; init; }

    /// <summary>The model version that classified it (null when no published version was involved, e.g. a local folder).</summary>
    [JsonPropertyName("modelVersion")]
    public string? ModelVersion { get; init; }

    /// <summary>The named model that classified the image; absent for the default model (so its documents are as before named models).</summary>
    [JsonPropertyName("model"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Model { get; init; }

    /// <summary>The decision: the top label, or <see cref="ClassificationPipeline.UnknownLabel"/> below the threshold.</summary>
    [JsonPropertyName("label"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Label { get; init; }

    /// <summary>The top-1 probability.</summary>
    [JsonPropertyName("confidence"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Confidence { get; init; }

    [JsonPropertyName("isUnknown"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public bool? IsUnknown { get; init; }

    [JsonPropertyName("threshold"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Threshold { get; init; }

    /// <summary>The out-of-distribution score: distance to the nearest training class over the model's cut-off (above 1: out of distribution).</summary>
    [JsonPropertyName("outOfDistribution"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? OutOfDistribution { get; init; }

    /// <summary>Why <see cref="IsUnknown"/> is true: one of <see cref="UnknownReasons"/>; null otherwise.</summary>
    [JsonPropertyName("unknownReason"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? UnknownReason { get; init; }

    [JsonPropertyName("top"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<LabelProbability>? Top { get; init; }

    /// <summary>
    /// A multi-label model's answer: every label at or above its threshold with its probability and that threshold, most
    /// probable first (<c>[]</c>: none of them). Absent for a multi-class model, whose documents are as before multi-label existed.
    /// </summary>
    [JsonPropertyName("labels"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<PredictedLabel>? Labels { get; init; }

    /// <summary>
    /// A multi-label model's closest call: the smallest distance, over every label (not only those in <see cref="Top"/>),
    /// between its probability and its threshold. Absent for a multi-class model.
    /// </summary>
    [JsonPropertyName("thresholdMargin"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? ThresholdMargin { get; init; }

    [JsonPropertyName("timings"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PredictionTimings? Timings { get; init; }

    [JsonPropertyName("error"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public PredictionError? Error { get; init; }

    /// <summary>Only in an HTTP response to <c>explain=true</c>: the activation map of the most probable class, or why there is none.</summary>
    [JsonPropertyName("explanation"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public ExplanationDocument? Explanation { get; init; }

    [JsonPropertyName("classifiedUtc")]
    public DateTimeOffset ClassifiedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>One of <see cref="PredictionSource"/>'s values; null in an HTTP response.</summary>
    [JsonPropertyName("source"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Source { get; init; }

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>
    /// True when the image's prediction can be stored: <c>&lt;image&gt;.json</c> is within <see cref="MaxBlobNameLength"/>
    /// (counted in UTF-16 characters, as Azurite does; a name of characters outside the Basic Multilingual Plane may
    /// be refused a few characters before Azure would).
    /// </summary>
    public static bool CanStoreFor(string imageBlobName)
    {
        ArgumentNullException.ThrowIfNull(imageBlobName);
        return imageBlobName.Length <= MaxImageNameLength;
    }

    /// <summary>The prediction blob's name for an image blob: <c>&lt;image&gt;.json</c>.</summary>
    public static string BlobNameFor(string imageBlobName)
    {
        ArgumentException.ThrowIfNullOrEmpty(imageBlobName);
        return imageBlobName + BlobSuffix;
    }

    /// <summary>An <c>ok</c> document from a classification.</summary>
    public static PredictionDocument FromClassification(string? image, Classification classification, string? modelVersion, string? source, DateTimeOffset? classifiedUtc = null)
    {
        ArgumentNullException.ThrowIfNull(classification);
        return new PredictionDocument
        {
            Status = PredictionStatus.Ok,
            Image = image,
            ModelVersion = modelVersion,
            Label = classification.Label,
            Confidence = classification.Confidence,
            IsUnknown = classification.IsUnknown,
            Threshold = classification.Threshold,
            OutOfDistribution = classification.OutOfDistribution is { } ood ? Math.Round(ood, 4) : null,
            UnknownReason = classification.UnknownReason,
            Top = classification.Top,
            Labels = classification.Labels,
            ThresholdMargin = classification.ThresholdMargin is { } margin ? Math.Round(margin, 4) : null,
            Timings = new PredictionTimings(classification.Timings.DecodeMs, classification.Timings.PreprocessMs, classification.Timings.InferenceMs),
            ClassifiedUtc = classifiedUtc ?? DateTimeOffset.UtcNow,
            Source = source,
        };
    }

    /// <summary>The body of a successful HTTP classification: an <c>ok</c> document without the blob fields <c>image</c> and <c>source</c>.</summary>
    public static PredictionDocument ForResponse(Classification classification, string? modelVersion) =>
        FromClassification(image: null, classification, modelVersion, source: null);

    /// <summary>A <c>rejected</c> document for an image the decoder or preprocessor refused.</summary>
    public static PredictionDocument FromRejection(string? image, ImageRejectedException rejection, string? modelVersion, string source, DateTimeOffset? classifiedUtc = null)
    {
        ArgumentNullException.ThrowIfNull(rejection);
        return new PredictionDocument
        {
            Status = PredictionStatus.Rejected,
            Image = image,
            ModelVersion = modelVersion,
            Error = new PredictionError(rejection.Code.ToString(), rejection.Message),
            ClassifiedUtc = classifiedUtc ?? DateTimeOffset.UtcNow,
            Source = source,
        };
    }

    public string ToJson() => JsonSerializer.Serialize(this, JsonOptions);

    public byte[] ToUtf8Bytes() => JsonSerializer.SerializeToUtf8Bytes(this, JsonOptions);

    /// <summary>Parses a stored prediction; throws <see cref="JsonException"/> when it is not one.</summary>
    public static PredictionDocument Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<PredictionDocument>(json, JsonOptions) ?? throw new JsonException("The prediction document is empty.");
}
