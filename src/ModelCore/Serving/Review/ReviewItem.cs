using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// One upload listed for review, stored as <c>review/items/&lt;image name&gt;.json</c>: which image version, what the
/// model said (the suggested label is the top label even when the decision was <c>unknown</c>), the scores and why
/// it was listed. camelCase JSON, null members omitted.
/// </summary>
public sealed record ReviewItem
{
    [JsonPropertyName("image")]
    public required string Image { get; init; }

    [JsonPropertyName("imageVersion")]
    public required string ImageVersion { get; init; }

    [JsonPropertyName("modelVersion")]
    public string? ModelVersion { get; init; }

    /// <summary>The named model whose prediction listed the upload; null for the default model (docs/architecture.md, "Review labels per model").</summary>
    [JsonPropertyName("model")]
    public string? Model { get; init; }

    /// <summary>The model's top label: what a person confirms or corrects.</summary>
    [JsonPropertyName("suggestedLabel")]
    public required string SuggestedLabel { get; init; }

    /// <summary>
    /// A multi-label model's upload: the labels its prediction listed (each at or above its threshold; empty for none), which a
    /// reviewer ticks or unticks. Null for a multi-class model's upload (absent from its JSON).
    /// </summary>
    [JsonPropertyName("suggestedLabels")]
    public IReadOnlyList<string>? SuggestedLabels { get; init; }

    /// <summary>True for a multi-label model's upload (<see cref="SuggestedLabels"/>).</summary>
    [JsonIgnore]
    public bool IsMultiLabel => SuggestedLabels is not null;

    /// <summary>The decision (the suggested label, or <c>unknown</c>).</summary>
    [JsonPropertyName("label")]
    public string? Label { get; init; }

    [JsonPropertyName("confidence")]
    public double Confidence { get; init; }

    /// <summary>Top-1 minus top-2 probability (1 for a one-label answer); a multi-label model's: its prediction's <c>thresholdMargin</c>.</summary>
    [JsonPropertyName("margin")]
    public double Margin { get; init; }

    [JsonPropertyName("outOfDistribution"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? OutOfDistribution { get; init; }

    [JsonPropertyName("unknownReason"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? UnknownReason { get; init; }

    /// <summary><see cref="ReviewReasons"/> values.</summary>
    [JsonPropertyName("reasons")]
    public IReadOnlyList<string> Reasons { get; init; } = [];

    [JsonPropertyName("top")]
    public IReadOnlyList<LabelProbability> Top { get; init; } = [];

    [JsonPropertyName("queuedUtc")]
    public DateTimeOffset QueuedUtc { get; init; }

    public static JsonSerializerOptions JsonOptions { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    /// <summary>The item for a stored prediction (which names its image and version) listed for <paramref name="reasons"/>.</summary>
    public static ReviewItem From(PredictionDocument prediction, IReadOnlyList<string> reasons, DateTimeOffset queuedUtc)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        var top = prediction.Top ?? throw new ArgumentException("An ok prediction has a ranking.", nameof(prediction));
        return new ReviewItem
        {
            Image = prediction.Image ?? throw new ArgumentException("A stored prediction names its image.", nameof(prediction)),
            ImageVersion = prediction.ImageVersion ?? throw new ArgumentException("A stored prediction names its image version.", nameof(prediction)),
            ModelVersion = prediction.ModelVersion,
            Model = prediction.Model,
            SuggestedLabel = top[0].Label,
            SuggestedLabels = prediction.Labels?.Select(l => l.Label).ToList(),
            Label = prediction.Label,
            Confidence = top[0].Probability,
            Margin = prediction.ThresholdMargin ?? (top.Count > 1 ? top[0].Probability - top[1].Probability : 1),
            OutOfDistribution = prediction.OutOfDistribution,
            UnknownReason = prediction.UnknownReason,
            Reasons = reasons,
            Top = top,
            QueuedUtc = queuedUtc,
        };
    }

    public byte[] ToUtf8Bytes() => JsonSerializer.SerializeToUtf8Bytes(this, JsonOptions);

    public static ReviewItem Parse(ReadOnlySpan<byte> json) =>
        JsonSerializer.Deserialize<ReviewItem>(json, JsonOptions) ?? throw new JsonException("The review item is empty.");
}
