using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Training;

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
    /// Keep each image's bytes in memory after the check, so training does not read them again.
    /// Null: yes for blob sources (no second download), no for folders (a second local read is cheap).
    /// </summary>
    public bool? KeepBytesInMemory { get; init; }

    /// <summary>Decoder limits applied to every image.</summary>
    public ImageLimits? Limits { get; init; }
}

/// <summary>
/// An ImageFolder data set: <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c> in a local folder, or
/// <c>&lt;prefix&gt;&lt;label&gt;/&lt;file&gt;</c> in a blob container (the <c>training</c> container's
/// layout). Labels are the sorted (ordinal) sub-folder names, validated: a hostile name is an error,
/// never a path. With <c>train/</c> and <c>val/</c> sub-folders those splits are used as they are;
/// otherwise each class is split with a seeded shuffle (stratified). Every image's header is checked
/// with <see cref="ImageDecoder"/> (format, byte and pixel limits); refused images are skipped and
/// listed in <see cref="Skipped"/>, never fatal. Nested folders inside a label folder belong to that
/// label; hidden files and symbolic links are ignored.
/// </summary>
public sealed class ImageFolderDataset
{
    public const int MaxLabelLength = 200;
    private const string TrainFolder = "train";
    private const string ValFolder = "val";

    private ImageFolderDataset(
        string description, DatasetOptions options, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> train, IReadOnlyList<LabeledImage> validation,
        IReadOnlyList<SkippedImage> skipped, IReadOnlyList<string> warnings, bool explicitSplit, string dataHash)
    {
        Description = description;
        Options = options;
        Labels = labels;
        Train = train;
        Validation = validation;
        Skipped = skipped;
        Warnings = warnings;
        ExplicitSplit = explicitSplit;
        DataHash = dataHash;
        TrainCounts = Count(train, labels);
        ValidationCounts = Count(validation, labels);
        var totals = labels.ToDictionary(l => l, l => TrainCounts[l] + ValidationCounts[l], StringComparer.Ordinal);
        Balance = new ClassBalance(totals, (double)totals.Values.Max() / Math.Max(1, totals.Values.Min()));
    }

    /// <summary>The folder path or container URI the images came from, for people.</summary>
    public string Description { get; }

    public DatasetOptions Options { get; }

    /// <summary>Class labels in output order (ordinal sort of the folder names).</summary>
    public IReadOnlyList<string> Labels { get; }

    public IReadOnlyList<LabeledImage> Train { get; }

    public IReadOnlyList<LabeledImage> Validation { get; }

    /// <summary>Images refused by the decoder's checks (path, code, message).</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; }

    /// <summary>Things worth telling the user that do not stop training (small classes, files outside label folders).</summary>
    public IReadOnlyList<string> Warnings { get; }

    /// <summary>True when the <c>train/</c> and <c>val/</c> folders defined the split.</summary>
    public bool ExplicitSplit { get; }

    /// <summary>SHA-256 (hex) over the sorted lines <c>"&lt;source&gt;:&lt;bytes&gt;\n"</c> of every accepted image.</summary>
    public string DataHash { get; }

    public IReadOnlyDictionary<string, int> TrainCounts { get; }

    public IReadOnlyDictionary<string, int> ValidationCounts { get; }

    /// <summary>Images per class (train + validation) and the max/min ratio.</summary>
    public ClassBalance Balance { get; }

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
        options ??= new DatasetOptions();
        var full = Path.GetFullPath(root);
        if (!Directory.Exists(full))
        {
            throw new DatasetException($"The data folder {full} does not exist.");
        }
        var warnings = new List<string>();
        var explicitSplit = Directory.Exists(Path.Combine(full, TrainFolder)) && Directory.Exists(Path.Combine(full, ValFolder));
        var train = ListFolder(full, explicitSplit ? TrainFolder : null, warnings);
        var val = explicitSplit ? ListFolder(full, ValFolder, warnings) : null;
        return BuildAsync(full, train, val, options, warnings, keepBytesDefault: false, progress, cancellationToken);
    }

    /// <summary>
    /// Lists, checks and splits the blobs <c>&lt;prefix&gt;&lt;label&gt;/&lt;file&gt;</c> of a container (the
    /// <c>training</c> container's layout; <c>&lt;prefix&gt;train/</c> and <c>&lt;prefix&gt;val/</c> work as in a folder).
    /// Each blob is downloaded once: its bytes stay in memory unless <see cref="DatasetOptions.KeepBytesInMemory"/> is false.
    /// </summary>
    public static async Task<ImageFolderDataset> FromBlobContainerAsync(
        BlobContainerClient container, string? prefix = null, DatasetOptions? options = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(container);
        options ??= new DatasetOptions();
        prefix = string.IsNullOrEmpty(prefix) ? "" : prefix.TrimEnd('/') + "/";
        var blobs = new List<(string Relative, long Bytes)>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken).ConfigureAwait(false))
        {
            if (!blob.Name.EndsWith('/'))
            {
                blobs.Add((blob.Name[prefix.Length..], blob.Properties.ContentLength ?? 0));
            }
        }
        var warnings = new List<string>();
        var explicitSplit = blobs.Any(b => b.Relative.StartsWith(TrainFolder + "/", StringComparison.Ordinal))
            && blobs.Any(b => b.Relative.StartsWith(ValFolder + "/", StringComparison.Ordinal));
        var description = $"{container.Uri}/{prefix}";
        List<LabeledImage> List(string? split)
        {
            var result = new List<LabeledImage>();
            var start = split is null ? "" : split + "/";
            foreach (var (relative, bytes) in blobs.Where(b => b.Relative.StartsWith(start, StringComparison.Ordinal)))
            {
                var rest = relative[start.Length..];
                var slash = rest.IndexOf('/', StringComparison.Ordinal);
                if (slash < 0)
                {
                    if (split is not null || (rest != TrainFolder && rest != ValFolder))
                    {
                        warnings.Add($"{relative} is not inside a label folder and is ignored.");
                    }
                    continue;
                }
                var label = ValidateLabel(rest[..slash], $"{description}{relative}");
                if (rest[(slash + 1)..].Split('/').Any(s => s.StartsWith('.')))
                {
                    continue; // hidden file, as in a folder
                }
                var blobClient = container.GetBlobClient(prefix + relative);
                result.Add(new LabeledImage(relative, label, bytes, async ct =>
                {
                    var content = await blobClient.DownloadContentAsync(ct).ConfigureAwait(false);
                    return content.Value.Content.ToArray();
                }));
            }
            return result;
        }
        var train = List(explicitSplit ? TrainFolder : null);
        var val = explicitSplit ? List(ValFolder) : null;
        return await BuildAsync(description, train, val, options, warnings, keepBytesDefault: true, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Checks a label (a folder or blob path segment): not empty or blank, at most 200 characters, no
    /// control characters, no path separators, not <c>.</c> or <c>..</c>. Returns it unchanged.
    /// </summary>
    /// <exception cref="DatasetException">The label is not acceptable; the message names where it was found.</exception>
    public static string ValidateLabel(string label, string where)
    {
        ArgumentNullException.ThrowIfNull(label);
        string? problem = label switch
        {
            _ when string.IsNullOrWhiteSpace(label) => "is empty or blank",
            _ when label.Length > MaxLabelLength => $"is {label.Length} characters long (at most {MaxLabelLength})",
            _ when label.Any(char.IsControl) => "contains control characters",
            "." or ".." => "is a relative path segment",
            _ when label.IndexOfAny(['/', '\\']) >= 0 => "contains a path separator",
            _ => null,
        };
        return problem is null
            ? label
            : throw new DatasetException($"Label {JsonSerializer.Serialize(label)} (from {where}) {problem}; rename that folder.");
    }

    private static List<LabeledImage> ListFolder(string root, string? split, List<string> warnings)
    {
        var folder = split is null ? root : Path.Combine(root, split);
        var skip = new EnumerationOptions { AttributesToSkip = FileAttributes.Hidden | FileAttributes.System | FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var recurse = new EnumerationOptions { AttributesToSkip = skip.AttributesToSkip, IgnoreInaccessible = true, RecurseSubdirectories = true };
        foreach (var file in Directory.EnumerateFiles(folder, "*", skip).Where(f => !Path.GetFileName(f).StartsWith('.')))
        {
            warnings.Add($"{Path.GetRelativePath(root, file)} is not inside a label folder and is ignored.");
        }
        var result = new List<LabeledImage>();
        foreach (var directory in Directory.EnumerateDirectories(folder, "*", skip))
        {
            var name = Path.GetFileName(directory);
            if (name.StartsWith('.'))
            {
                continue;
            }
            var label = ValidateLabel(name, directory);
            foreach (var file in Directory.EnumerateFiles(directory, "*", recurse))
            {
                var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
                if (relative.Split('/').Any(s => s.StartsWith('.')))
                {
                    continue;
                }
                var path = file;
                result.Add(new LabeledImage(relative, label, new FileInfo(file).Length, ct => File.ReadAllBytesAsync(path, ct)));
            }
        }
        return result;
    }

    private static async Task<ImageFolderDataset> BuildAsync(
        string description, List<LabeledImage> listedTrain, List<LabeledImage>? listedVal, DatasetOptions options, List<string> warnings,
        bool keepBytesDefault, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        if (options.ValSplit is <= 0 or >= 1 || double.IsNaN(options.ValSplit))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ValSplit, "ValSplit must be between 0 and 1 (exclusive).");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinImagesPerClass, 2, nameof(options));
        var keepBytes = options.KeepBytesInMemory ?? keepBytesDefault;
        var decoder = new ImageDecoder(options.Limits);
        var skipped = new List<SkippedImage>();
        var total = listedTrain.Count + (listedVal?.Count ?? 0);
        var done = 0;

        async Task<List<LabeledImage>> CheckAllAsync(List<LabeledImage> images)
        {
            var accepted = new List<LabeledImage>();
            foreach (var image in images.OrderBy(i => i.Label, StringComparer.Ordinal).ThenBy(i => i.Source, StringComparer.Ordinal))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var checkedImage = await CheckAsync(image, decoder, keepBytes, skipped, cancellationToken).ConfigureAwait(false);
                if (checkedImage is not null)
                {
                    accepted.Add(checkedImage);
                }
                progress?.Report(new TrainingProgress(TrainingPhase.Loading, ++done, total, $"checking {image.Source}"));
            }
            return accepted;
        }

        var train = await CheckAllAsync(listedTrain).ConfigureAwait(false);
        var val = listedVal is null ? null : await CheckAllAsync(listedVal).ConfigureAwait(false);

        var labels = train.Select(i => i.Label).Concat(listedTrain.Select(i => i.Label)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (val is not null)
        {
            var unknown = val.Select(i => i.Label).Concat(listedVal!.Select(i => i.Label)).Distinct(StringComparer.Ordinal).Where(l => !labels.Contains(l, StringComparer.Ordinal)).ToList();
            if (unknown.Count > 0)
            {
                throw new DatasetException($"{description}: val/ has classes that train/ lacks: {string.Join(", ", unknown.Select(u => $"\"{u}\""))}.");
            }
        }
        if (labels.Count < 2)
        {
            throw new DatasetException($"{description}: found {labels.Count} class folder(s) ({string.Join(", ", labels)}); a classifier needs at least 2. Expected <root>/<label>/<image files>.");
        }

        List<LabeledImage> trainSplit;
        List<LabeledImage> valSplit;
        if (val is null)
        {
            (trainSplit, valSplit) = StratifiedSplit(train, labels, options, description);
        }
        else
        {
            foreach (var label in labels)
            {
                var t = train.Count(i => i.Label == label);
                var v = val.Count(i => i.Label == label);
                if (t == 0 || t + v < options.MinImagesPerClass)
                {
                    throw new DatasetException($"{description}: class \"{label}\" has {t} training and {v} validation image(s) that can be read; it needs at least 1 training image and {options.MinImagesPerClass} in all.");
                }
                if (v == 0)
                {
                    warnings.Add($"Class \"{label}\" has no validation images in val/; its accuracy is not measured.");
                }
            }
            (trainSplit, valSplit) = (train, val);
        }
        foreach (var label in labels)
        {
            var n = trainSplit.Count(i => i.Label == label) + valSplit.Count(i => i.Label == label);
            if (n < options.FewImagesWarning)
            {
                warnings.Add($"Class \"{label}\" has only {n} image(s); results on it will be noisy (aim for {options.FewImagesWarning} or more).");
            }
        }
        var hash = ComputeDataHash(trainSplit.Concat(valSplit));
        return new ImageFolderDataset(description, options, labels, trainSplit, valSplit, skipped, warnings, val is not null, hash);
    }

    private static async Task<LabeledImage?> CheckAsync(LabeledImage image, ImageDecoder decoder, bool keepBytes, List<SkippedImage> skipped, CancellationToken cancellationToken)
    {
        if (image.Bytes > decoder.Limits.MaxBytes)
        {
            skipped.Add(new SkippedImage(image.Source, ImageErrorCode.TooLarge, $"{image.Bytes} bytes is more than the limit of {decoder.Limits.MaxBytes}"));
            return null;
        }
        byte[] bytes;
        try
        {
            bytes = await image.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (IOException e)
        {
            skipped.Add(new SkippedImage(image.Source, ImageErrorCode.Corrupt, $"could not be read: {e.Message}"));
            return null;
        }
        if (!decoder.TryIdentify(bytes, out _, out var error))
        {
            skipped.Add(new SkippedImage(image.Source, error.Code, error.Message));
            return null;
        }
        // The size as read, not as listed, goes into the data hash.
        return keepBytes
            ? image with { Bytes = bytes.Length, ReadAsync = _ => Task.FromResult(bytes) }
            : image with { Bytes = bytes.Length };
    }

    /// <summary>
    /// Per class (in label order): sort by source, shuffle with one <see cref="Random"/> seeded by
    /// <see cref="DatasetOptions.Seed"/>, hold out round(n * ValSplit) images, at least 1 and at most n - 1.
    /// </summary>
    private static (List<LabeledImage> Train, List<LabeledImage> Val) StratifiedSplit(List<LabeledImage> images, List<string> labels, DatasetOptions options, string description)
    {
        var random = new Random(options.Seed);
        var train = new List<LabeledImage>();
        var val = new List<LabeledImage>();
        foreach (var label in labels)
        {
            var members = images.Where(i => i.Label == label).OrderBy(i => i.Source, StringComparer.Ordinal).ToArray();
            if (members.Length < options.MinImagesPerClass)
            {
                throw new DatasetException(
                    $"{description}: class \"{label}\" has {members.Length} image(s) that can be read; at least {options.MinImagesPerClass} are needed (one to train on, one to validate). Add images or remove the folder.");
            }
            random.Shuffle(members);
            var holdOut = Math.Clamp((int)Math.Round(members.Length * options.ValSplit, MidpointRounding.AwayFromZero), 1, members.Length - 1);
            val.AddRange(members.Take(holdOut).OrderBy(i => i.Source, StringComparer.Ordinal));
            train.AddRange(members.Skip(holdOut).OrderBy(i => i.Source, StringComparer.Ordinal));
        }
        return (train, val);
    }

    private static string ComputeDataHash(IEnumerable<LabeledImage> images)
    {
        var text = new StringBuilder();
        foreach (var line in images.Select(i => $"{i.Source}:{i.Bytes}").Order(StringComparer.Ordinal))
        {
            text.Append(line).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static Dictionary<string, int> Count(IReadOnlyList<LabeledImage> images, IReadOnlyList<string> labels) =>
        labels.ToDictionary(l => l, l => images.Count(i => i.Label == l), StringComparer.Ordinal);
}
