namespace ServerlessClassifier.Functions.Contracts;

/// <summary>One listed upload as the review page shows it.</summary>
public sealed record ReviewCard(string Image, string ImageVersion, string SuggestedLabel, string? Label, double Confidence, double Margin,
    double? OutOfDistribution, string? UnknownReason, IReadOnlyList<string> Reasons, DateTimeOffset QueuedUtc);
