namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// What one backfill run did: <see cref="Found"/> items taken on (at most the run's limit; <see cref="LimitReached"/>
/// when more remain), and what became of them. <see cref="Failed"/> items threw (storage errors); they are found
/// again by the next run.
/// </summary>
public sealed record BackfillReport(int Found, int Classified, int Rejected, int AlreadyDone, int Removed, int Failed, bool LimitReached)
{
    public static BackfillReport Nothing { get; } = new(0, 0, 0, 0, 0, 0, false);

    /// <summary>Items for which nothing was written: no model, the image gone or overwritten meanwhile.</summary>
    public int Skipped => Found - Classified - Rejected - AlreadyDone - Removed - Failed;
}
