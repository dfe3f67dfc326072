namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// What one backfill run did: <see cref="Found"/> items taken on (at most the run's limit; <see cref="LimitReached"/>
/// when more remain), and what became of them. <see cref="Failed"/> items threw (storage errors); they are found
/// again by a later run.
/// </summary>
public sealed record BackfillReport(int Found, int Classified, int Rejected, int AlreadyDone, int Removed, int Failed, bool LimitReached)
{
    public static BackfillReport Nothing { get; } = new(0, 0, 0, 0, 0, 0, false);

    /// <summary>Items the caller asked to pass over (the sweep: images that failed in recent runs); not in <see cref="Found"/>.</summary>
    public int PassedOver { get; init; }

    /// <summary>Images seen whose name is too long for a prediction (never classified, never counted in <see cref="Found"/>).</summary>
    public int NamesTooLong { get; init; }

    /// <summary>The first of <see cref="NamesTooLong"/> in name order, for the log; null when there is none.</summary>
    public string? FirstNameTooLong { get; init; }

    /// <summary>Items for which nothing was written: no model, the image gone or overwritten meanwhile.</summary>
    public int Skipped => Found - Classified - Rejected - AlreadyDone - Removed - Failed;
}
