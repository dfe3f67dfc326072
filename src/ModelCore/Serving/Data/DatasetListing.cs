namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// The images a data set starts from, before any is read: the training list, the validation list when
/// the source fixes the split, what was already skipped while listing, and warnings.
/// </summary>
internal sealed record DatasetListing(
    string Description, List<LabeledImage> Train, List<LabeledImage>? Validation, List<SkippedImage> Skipped, List<string> Warnings, DataManifestInfo? Manifest = null)
{
    /// <summary>True when every image carries a set of labels (<see cref="LabeledImage.Labels"/>): a multi-label data set.</summary>
    public bool MultiLabel { get; init; }
}
