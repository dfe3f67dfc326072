namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// One listed upload as the review page shows it. A named model's card names it and carries that model's classes (the
/// list's <c>labels</c> are the default model's); null for the default model's uploads.
/// </summary>
public sealed record ReviewCard(string Image, string ImageVersion, string SuggestedLabel, string? Label, double Confidence, double Margin,
    double? OutOfDistribution, string? UnknownReason, IReadOnlyList<string> Reasons, DateTimeOffset QueuedUtc)
{
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? Model { get; init; }

    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Labels { get; init; }
}
