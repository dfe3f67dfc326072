using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>Values of <see cref="LabelRecord.Decision"/>.</summary>
public static class LabelDecisions
{
    /// <summary>An Approver accepted the label: the image was added to the training data.</summary>
    public const string Approved = "approved";

    /// <summary>An Approver refused the label: nothing was added.</summary>
    public const string Rejected = "rejected";

    /// <summary>The reviewer discarded the upload instead of labelling it: nothing was added.</summary>
    public const string Discarded = "discarded";
}

/// <summary>
/// The record of one person's label for one listed image version, and of the decision on it. While it waits for an
/// Approver it is <c>review/staged/&lt;id&gt;.json</c> (<see cref="Decision"/> null), beside the bytes the reviewer
/// labelled; once decided (or discarded) it is <c>review/records/&lt;id&gt;.json</c>, written once, and kept. The id is
/// derived from the image name and version (<see cref="IdFor"/>), so one image version has one record. camelCase JSON,
/// null members omitted.
/// </summary>
public sealed record LabelRecord
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("image")]
    public required string Image { get; init; }

    [JsonPropertyName("imageVersion")]
    public required string ImageVersion { get; init; }

    /// <summary>The model version whose prediction listed the upload.</summary>
    [JsonPropertyName("modelVersion")]
    public string? ModelVersion { get; init; }

    /// <summary>The named model the label is for; null for the default model. An approval adds the image to that model's training data only (<see cref="ReviewTrainingData"/>).</summary>
    [JsonPropertyName("model")]
    public string? Model { get; init; }

    /// <summary>What the model suggested.</summary>
    [JsonPropertyName("suggestedLabel")]
    public required string SuggestedLabel { get; init; }

    /// <summary>The label the reviewer gave; null when the upload was discarded, and for a multi-label model's upload (<see cref="Labels"/>).</summary>
    [JsonPropertyName("label")]
    public string? Label { get; init; }

    /// <summary>
    /// A multi-label model's upload: the labels the reviewer ticked, in ordinal order (empty: none, a legal negative); null for a
    /// multi-class model's label (absent from its JSON, which is as it was) and for a discard.
    /// </summary>
    [JsonPropertyName("labels")]
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>A multi-label model's upload: the labels its prediction listed (at or above their thresholds); null otherwise.</summary>
    [JsonPropertyName("suggestedLabels")]
    public IReadOnlyList<string>? SuggestedLabels { get; init; }

    /// <summary>The label was not a class of the live model when it was given (only an Approver may give one).</summary>
    [JsonPropertyName("newClass")]
    public bool NewClass { get; init; }

    /// <summary>The file name the image gets in the training data (<see cref="ReviewLabeling.FileNameFor"/>).</summary>
    [JsonPropertyName("fileName")]
    public string? FileName { get; init; }

    /// <summary>SHA-256 (hex) of the bytes the reviewer labelled; an approval adds exactly these.</summary>
    [JsonPropertyName("contentSha256")]
    public string? ContentSha256 { get; init; }

    [JsonPropertyName("contentLength")]
    public long ContentLength { get; init; }

    [JsonPropertyName("labelledBy")]
    public required ReviewActor LabelledBy { get; init; }

    [JsonPropertyName("labelledUtc")]
    public required DateTimeOffset LabelledUtc { get; init; }

    /// <summary>A <see cref="LabelDecisions"/> value; null while the label waits for an Approver.</summary>
    [JsonPropertyName("decision")]
    public string? Decision { get; init; }

    [JsonPropertyName("decidedBy")]
    public ReviewActor? DecidedBy { get; init; }

    [JsonPropertyName("decidedUtc")]
    public DateTimeOffset? DecidedUtc { get; init; }

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>True when the reviewer discarded the upload (no label, and no set of labels).</summary>
    [JsonIgnore]
    public bool IsDiscard => Label is null && Labels is null;

    /// <summary>The label, or a multi-label upload's labels joined by ';' (empty for none), for messages, logs and counts.</summary>
    [JsonIgnore]
    public string? LabelText => Labels is { } labels ? string.Join(Data.DataManifest.MultiLabelSeparator, labels) : Label;

    /// <summary>The record id of an image version: 32 hex digits of SHA-256 over the name and version (blob-name safe, fixed length).</summary>
    public static string IdFor(string image, string imageVersion)
    {
        ArgumentException.ThrowIfNullOrEmpty(image);
        ArgumentException.ThrowIfNullOrEmpty(imageVersion);
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{image}\n{imageVersion}")))[..32];
    }

    /// <summary>True for a string <see cref="IdFor"/> can return (what a caller may name).</summary>
    public static bool IsId(string? id) => id is { Length: 32 } && id.All(char.IsAsciiHexDigitLower);

    /// <summary>The record of <paramref name="label"/> (null: a discard) for a listed item, with the labelled bytes' hash.</summary>
    public static LabelRecord For(ReviewItem item, LabelDecision decision, string? fileName, ReadOnlySpan<byte> content)
    {
        ArgumentNullException.ThrowIfNull(item);
        ArgumentNullException.ThrowIfNull(decision);
        return new LabelRecord
        {
            Id = IdFor(item.Image, item.ImageVersion),
            Image = item.Image,
            ImageVersion = item.ImageVersion,
            ModelVersion = item.ModelVersion,
            Model = item.Model,
            SuggestedLabel = item.SuggestedLabel,
            SuggestedLabels = item.SuggestedLabels,
            Label = decision.Label,
            Labels = decision.Labels,
            NewClass = decision.NewClass,
            FileName = decision.IsDiscard ? null : fileName,
            ContentSha256 = decision.IsDiscard ? null : Convert.ToHexStringLower(SHA256.HashData(content)),
            ContentLength = decision.IsDiscard ? 0 : content.Length,
            LabelledBy = decision.By,
            LabelledUtc = decision.Utc,
        };
    }

    public byte[] ToUtf8Bytes() => JsonSerializer.SerializeToUtf8Bytes(this, JsonOptions);

    public static LabelRecord Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<LabelRecord>(json, JsonOptions) ?? throw new JsonException("The label record is empty.");
}

/// <summary>
/// A person's decision on one listed upload: the label (null discards it), who gave it, when, and whether the label is
/// a class the live model does not have yet. A multi-label model's upload is labelled with a set instead
/// (<see cref="MultiLabel"/>: <see cref="Labels"/>, empty for none); <see cref="Label"/> is then null.
/// </summary>
public sealed record LabelDecision(string? Label, ReviewActor By, bool NewClass, DateTimeOffset Utc)
{
    /// <summary>A multi-label model's upload: the labels ticked (empty: none, a legal negative); null for a single label or a discard.</summary>
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>True when the upload is discarded: no label and no set of labels.</summary>
    public bool IsDiscard => Label is null && Labels is null;

    /// <summary>The decision for a multi-label model's upload: <paramref name="labels"/> (any order, none allowed); <paramref name="newClass"/> when any is not a class of the live model.</summary>
    public static LabelDecision MultiLabel(IReadOnlyList<string> labels, ReviewActor by, bool newClass, DateTimeOffset utc)
    {
        ArgumentNullException.ThrowIfNull(labels);
        return new LabelDecision(null, by, newClass, utc) { Labels = labels };
    }
}
