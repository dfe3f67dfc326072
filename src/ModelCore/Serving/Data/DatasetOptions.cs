using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>How a data set is checked and split.</summary>
public sealed record DatasetOptions
{
    /// <summary>Fraction of each class held out for validation when there are no <c>train/</c> and <c>val/</c> folders.</summary>
    public double ValSplit { get; init; } = 0.2;

    /// <summary>Seeds the stratified split (the same seed and files give the same split).</summary>
    public int Seed { get; init; } = 42;

    /// <summary>
    /// Fewest images a class may have. 2 is the least that gives a class one training and one
    /// validation image; anything less cannot be learnt and measured at once. Classes with fewer
    /// than <see cref="FewImagesWarning"/> are accepted with a warning.
    /// </summary>
    public int MinImagesPerClass { get; init; } = 2;

    /// <summary>Classes with fewer images than this get a warning (results on them are noisy).</summary>
    public int FewImagesWarning { get; init; } = 10;

    /// <summary>
    /// Keep each image's bytes after the check, in a temporary file (<see cref="ImageSpool"/>: disk, not memory), so
    /// training does not download them again. Null: yes for blob sources and manifests, no for folders (a second
    /// local read is cheap).
    /// </summary>
    public bool? KeepBytes { get; init; }

    /// <summary>
    /// Read and identify every image before the split (the default). False: accept each image as listed (its listed
    /// size still has to be within the limits) and read nothing; an image that is missing or does not decode is then
    /// skipped when training reads it. Head mode with stored features sets it, so images whose features are stored
    /// are never downloaded. Implies no <see cref="KeepBytes"/>.
    /// </summary>
    public bool CheckContent { get; init; } = true;

    /// <summary>
    /// Multi-label reading of a manifest: true reads every row as a set of labels (a cell's ';' separates labels; a row
    /// without labels is a negative); null (the default) does so only when some row is written in a multi-label form
    /// (several label columns, an Azure ML label array of several, Ground Truth multilabel metadata).
    /// </summary>
    public bool? MultiLabel { get; init; }

    /// <summary>Decoder limits applied to every image.</summary>
    public ImageLimits? Limits { get; init; }
}
