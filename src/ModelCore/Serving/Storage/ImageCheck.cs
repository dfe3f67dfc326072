namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// An image blob and its prediction, read with one HEAD request each: whether the image exists, its version
/// (ETag), size and write time, and the prediction stored for it (null when none).
/// </summary>
public sealed record ImageCheck(string Name, bool Exists, string? Version, Azure.ETag ETag, long Length, DateTimeOffset LastModified, StoredPrediction? Existing)
{
    /// <summary>The image exists and its prediction describes this version of it: nothing to do.</summary>
    public bool IsCurrent => Exists && Existing is not null && Existing.Describes(Version!, LastModified);

    /// <summary>The image exists and has no prediction, or one of an older version.</summary>
    public bool NeedsClassification => Exists && !IsCurrent;
}
