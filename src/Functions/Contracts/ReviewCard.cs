namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// One listed upload as the review page shows it. A named model's card names it and carries that model's classes (the
/// list's <c>labels</c> are the default model's); null for the default model's uploads. A multi-label model's card carries
/// <see cref="SuggestedLabels"/>.
/// </summary>
public sealed record ReviewCard(string Image, string ImageVersion, string SuggestedLabel, string? Label, double Confidence, double Margin,
    double? OutOfDistribution, string? UnknownReason, IReadOnlyList<string> Reasons, DateTimeOffset QueuedUtc)
{
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Model { get; init; }

    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Labels { get; init; }

    /// <summary>
    /// A multi-label model's upload: the labels its prediction listed (empty: none reached its threshold). The page then offers a
    /// tick per class and sends <c>labels</c>; absent for a multi-class model's upload.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? SuggestedLabels { get; init; }
}
