using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// A labelled image set: an ImageFolder layout <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c> in a local folder
/// (<see cref="FolderListing"/>) or <c>&lt;prefix&gt;&lt;label&gt;/&lt;file&gt;</c> in a blob container
/// (<see cref="BlobListing"/>, the <c>training</c> container's layout), or a manifest file that lists
/// images and labels (<see cref="DataManifest"/>: CSV, Azure ML JSONL, Vertex AI CSV, SageMaker Ground
/// Truth). Labels are sorted (ordinal) and follow <see cref="TrainingLayout.LabelProblem"/>: a hostile name is an error, never a path. With
/// <c>train/</c> and <c>val/</c> sub-folders (or a manifest's own split) those splits are used as they
/// are; otherwise each class is split with a seeded shuffle (stratified). Every image's header is
/// checked with <see cref="ImageDecoder"/> (format, byte and pixel limits); refused images are skipped
/// and listed in <see cref="Skipped"/>, never fatal (<see cref="DatasetBuilder"/>).
/// </summary>
public sealed class ImageFolderDataset
{
    internal ImageFolderDataset(
        string description, DatasetOptions options, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> train, IReadOnlyList<LabeledImage> validation,
        IReadOnlyList<SkippedImage> skipped, IReadOnlyList<string> warnings, bool explicitSplit, string dataHash, DataManifestInfo? manifest,
        bool multiLabel = false)
    {
        IsMultiLabel = multiLabel;
        Description = description;
        Options = options;
        Labels = labels;
        Train = train;
        Validation = validation;
        Skipped = skipped;
        Warnings = warnings;
        ExplicitSplit = explicitSplit;
        DataHash = dataHash;
        Manifest = manifest;
        TrainCounts = Count(train, labels);
        ValidationCounts = Count(validation, labels);
        var totals = labels.ToDictionary(l => l, l => TrainCounts[l] + ValidationCounts[l], StringComparer.Ordinal);
        Balance = new ClassBalance(totals, (double)totals.Values.Max() / Math.Max(1, totals.Values.Min()));
    }

    /// <summary>The folder path, container URI or manifest file the images came from, for people.</summary>
    public string Description { get; }

    public DatasetOptions Options { get; }

    /// <summary>
    /// True for a multi-label data set (a manifest read as one, see <see cref="DatasetOptions.MultiLabel"/>): each image's
    /// <see cref="LabeledImage.Labels"/> is its set of labels, possibly empty; counts are of images carrying each label.
    /// </summary>
    public bool IsMultiLabel { get; }

    /// <summary>Class labels in output order (ordinal sort).</summary>
    public IReadOnlyList<string> Labels { get; }

    public IReadOnlyList<LabeledImage> Train { get; }

    public IReadOnlyList<LabeledImage> Validation { get; }

    /// <summary>Images left out: refused by the decoder's checks, or (from a manifest) missing, listed twice or unlabelled.</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; }

    /// <summary>Things worth telling the user that do not stop training (small classes, files outside label folders).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>True when <c>train/</c> and <c>val/</c> folders (or the manifest's split column) defined the split.</summary>
    public bool ExplicitSplit { get; }

    /// <summary>SHA-256 (hex) over the sorted lines <c>"&lt;source&gt;:&lt;bytes&gt;\n"</c> of every accepted image.</summary>
    public string DataHash { get; }

    /// <summary>The manifest the images were listed in (path, format, SHA-256), or null for a folder or container.</summary>
    public DataManifestInfo? Manifest { get; }

    public IReadOnlyDictionary<string, int> TrainCounts { get; }

    public IReadOnlyDictionary<string, int> ValidationCounts { get; }

    /// <summary>Images per class (train + validation) and the max/min ratio.</summary>
    public ClassBalance Balance { get; }

    /// <summary>The class index of a multi-class image; 0 for every image of a multi-label data set (its labels are a set).</summary>
    internal int ClassIndexOf(LabeledImage image) => IsMultiLabel ? 0 : LabelIndex(image.Label);

    public int LabelIndex(string label)
    {
        for (var i = 0; i < Labels.Count; i++)
        {
            if (string.Equals(Labels[i], label, StringComparison.Ordinal))
            {
                return i;
            }
        }
        throw new ArgumentException($"Unknown label \"{label}\".", nameof(label));
    }

    /// <summary>Lists, checks and splits <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c> (or <c>&lt;root&gt;/train|val/&lt;label&gt;/&lt;file&gt;</c>).</summary>
    /// <exception cref="DatasetException">Fewer than two classes, a class with too few images, or an invalid label.</exception>
    public static Task<ImageFolderDataset> FromDirectoryAsync(string root, DatasetOptions? options = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
        {
            throw new DatasetException($"The data folder {full} does not exist.");
        }
        var listed = FolderListing.List(full);
        return DatasetBuilder.BuildAsync(listed, options ?? new DatasetOptions(), keepBytesDefault: false, progress, cancellationToken);
    }

    /// <summary>
    /// Lists, checks and splits the blobs <c>&lt;prefix&gt;&lt;label&gt;/&lt;file&gt;</c> of a container (the
    /// <c>training</c> container's layout; <c>&lt;prefix&gt;train/</c> and <c>&lt;prefix&gt;val/</c> work as in a folder).
    /// Each blob is downloaded once: its bytes are kept in a temporary file (not in memory) unless <see cref="DatasetOptions.KeepBytes"/> is false.
    /// </summary>
    public static async Task<ImageFolderDataset> FromBlobContainerAsync(
        BlobContainerClient container, string? prefix = null, DatasetOptions? options = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(container);
        var listed = await BlobListing.ListAsync(container, prefix, cancellationToken).ConfigureAwait(false);
        return await DatasetBuilder.BuildAsync(listed, options ?? new DatasetOptions(), keepBytesDefault: true, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads a manifest file (format detected from its content, see <see cref="DataManifest"/>), then checks
    /// and splits its images as for a folder. A manifest's own split (Vertex AI's ML_USE) is honoured;
    /// TEST rows are held out of training and validation. Images listed twice, missing or without a label
    /// are skipped and listed in <see cref="Skipped"/>.
    /// </summary>
    /// <exception cref="DatasetException">An unknown format, a row with several labels when multi-label is not asked for or detected, another cloud's URI, or a data set that cannot be trained on.</exception>
    public static async Task<ImageFolderDataset> FromManifestAsync(
        string manifestPath, ManifestSources? sources = null, DatasetOptions? options = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        var manifest = await DataManifest.ReadAsync(manifestPath, sources ?? new ManifestSources(), options, cancellationToken).ConfigureAwait(false);
        var listed = manifest.ToListing();
        return await DatasetBuilder.BuildAsync(listed, options ?? new DatasetOptions(), keepBytesDefault: true, progress, cancellationToken).ConfigureAwait(false);
    }

    private static Dictionary<string, int> Count(IReadOnlyList<LabeledImage> images, IReadOnlyList<string> labels) =>
        labels.ToDictionary(l => l, l => images.Count(i => i.Labels is { } set ? set.Contains(l, StringComparer.Ordinal) : i.Label == l), StringComparer.Ordinal);
}
