namespace ServerlessClassifier.Functions.Contracts;

/// <summary>The review page's list: the cards, the labels to choose from, and today's count against the daily bound.</summary>
public sealed record ReviewList(IReadOnlyList<ReviewCard> Items, IReadOnlyList<string> Labels, bool More, int QueuedToday, int MaxPerDay);
