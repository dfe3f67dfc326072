namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// The review queue's settings (<c>Classifier:Review:*</c> in the Functions app and for TrainJob's backfill):
/// which container, how many uploads a day at most, and how close the top two probabilities must be to count
/// as low-margin.
/// </summary>
public sealed record ReviewSettings
{
    public const string DefaultContainer = "review";
    public const int DefaultMaxPerDay = 200;
    public const double DefaultMarginBelow = 0.1;

    public string Container { get; init; } = DefaultContainer;

    /// <summary>Most uploads listed per UTC day (0 turns the queue off); the rest of the day's candidates are not listed.</summary>
    public int MaxPerDay { get; init; } = DefaultMaxPerDay;

    /// <summary>A prediction whose top-1 probability exceeds the top-2 by less than this is listed.</summary>
    public double MarginBelow { get; init; } = DefaultMarginBelow;
}
