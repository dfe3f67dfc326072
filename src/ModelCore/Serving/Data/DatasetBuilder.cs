using System.Security.Cryptography;
using System.Text;
using Azure;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Turns a <see cref="DatasetListing"/> into an <see cref="ImageFolderDataset"/>: reads and checks every
/// image's header (refused images are skipped, never fatal), settles the labels, checks class sizes,
/// splits (the listing's own split, or stratified and seeded) and computes the data hash.
/// </summary>
internal static class DatasetBuilder
{
    public static async Task<ImageFolderDataset> BuildAsync(
        DatasetListing listing, DatasetOptions options, bool keepBytesDefault, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var (description, listedTrain, listedVal, warnings) = (listing.Description, listing.Train, listing.Validation, listing.Warnings);
        if (options.ValSplit is <= 0 or >= 1 || double.IsNaN(options.ValSplit))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ValSplit, "ValSplit must be between 0 and 1 (exclusive).");
        }
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MinImagesPerClass, 2, nameof(options));
        // Downloaded bytes go to disk, not memory: a data set of 500,000 photos would not fit.
        var spool = options.CheckContent && (options.KeepBytes ?? keepBytesDefault) ? new ImageSpool(Path.GetTempPath()) : null;
        var decoder = new ImageDecoder(options.Limits);
        var skipped = new List<SkippedImage>(listing.Skipped);
        var total = listedTrain.Count + (listedVal?.Count ?? 0);
        var done = 0;

        async Task<List<LabeledImage>> CheckAllAsync(List<LabeledImage> images)
        {
            var accepted = new List<LabeledImage>();
            foreach (var image in images.OrderBy(i => i.Label, StringComparer.Ordinal).ThenBy(i => i.Source, StringComparer.Ordinal))
            {
                cancellationToken.ThrowIfCancellationRequested();
                var checkedImage = await CheckAsync(image, decoder, spool, skipped, options.CheckContent, cancellationToken).ConfigureAwait(false);
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

        if (listing.MultiLabel)
        {
            return BuildMultiLabel(listing, options, train, val, skipped, warnings);
        }
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
        return new ImageFolderDataset(description, options, labels, trainSplit, valSplit, skipped, warnings, val is not null, hash, listing.Manifest);
    }


    /// <summary>
    /// A multi-label data set: the labels are those the training images carry; each needs at least
    /// <see cref="DatasetOptions.MinImagesPerClass"/> images carrying it (one in training) and an image without it.
    /// Without a fixed split, each set of labels (images without any form one) is split as a class is, except that a set
    /// of one image trains.
    /// </summary>
    private static ImageFolderDataset BuildMultiLabel(DatasetListing listing, DatasetOptions options, List<LabeledImage> train, List<LabeledImage>? val, List<SkippedImage> skipped,
        List<string> warnings)
    {
        var description = listing.Description;
        var labels = train.Concat(listing.Train).SelectMany(i => i.Labels!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (val is not null && val.Concat(listing.Validation!).SelectMany(i => i.Labels!).Distinct(StringComparer.Ordinal).Where(l => !labels.Contains(l, StringComparer.Ordinal)).ToList()
            is { Count: > 0 } unknown)
        {
            throw new DatasetException($"{description}: the validation rows have labels no training row has: {string.Join(", ", unknown.Select(u => $"\"{u}\""))}.");
        }
        if (labels.Count == 0)
        {
            throw new DatasetException($"{description}: no image carries a label; a multi-label model needs at least one label with images that carry it.");
        }
        List<LabeledImage> trainSplit = [];
        List<LabeledImage> valSplit = [];
        if (val is null)
        {
            var random = new Random(options.Seed);
            foreach (var stratum in train.GroupBy(i => i.Label, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                var members = stratum.OrderBy(i => i.Source, StringComparer.Ordinal).ToArray();
                random.Shuffle(members);
                var holdOut = Math.Clamp((int)Math.Round(members.Length * options.ValSplit, MidpointRounding.AwayFromZero), 0, members.Length - 1);
                valSplit.AddRange(members.Take(holdOut));
                trainSplit.AddRange(members.Skip(holdOut));
            }
            trainSplit = [.. trainSplit.OrderBy(i => i.Source, StringComparer.Ordinal)];
            valSplit = [.. valSplit.OrderBy(i => i.Source, StringComparer.Ordinal)];
        }
        else
        {
            (trainSplit, valSplit) = (train, val);
        }
        var all = trainSplit.Count + valSplit.Count;
        foreach (var label in labels)
        {
            var inTrain = trainSplit.Count(i => i.Labels!.Contains(label, StringComparer.Ordinal));
            var carrying = inTrain + valSplit.Count(i => i.Labels!.Contains(label, StringComparer.Ordinal));
            if (inTrain == 0 || carrying < options.MinImagesPerClass || carrying == all)
            {
                throw new DatasetException(
                    $"{description}: label \"{label}\" is carried by {carrying} of the {all} images that can be read ({inTrain} in training); each label needs at least {options.MinImagesPerClass} " +
                    "images that carry it (one of them in training) and at least one image that does not.");
            }
            if (carrying < options.FewImagesWarning)
            {
                warnings.Add($"Label \"{label}\" is carried by only {carrying} image(s); results on it will be noisy (aim for {options.FewImagesWarning} or more).");
            }
        }
        var negatives = trainSplit.Concat(valSplit).Count(i => i.Labels!.Count == 0);
        warnings.Add($"Multi-label data: {labels.Count} labels; {negatives} of the {all} images carry none of them (negatives).");
        var hash = ComputeDataHash(trainSplit.Concat(valSplit));
        return new ImageFolderDataset(description, options, labels, trainSplit, valSplit, skipped, warnings, val is not null, hash, listing.Manifest, multiLabel: true);
    }

    private static async Task<LabeledImage?> CheckAsync(
        LabeledImage image, ImageDecoder decoder, ImageSpool? spool, List<SkippedImage> skipped, bool checkContent, CancellationToken cancellationToken)
    {
        if (image.Bytes > decoder.Limits.MaxBytes)
        {
            skipped.Add(new SkippedImage(image.Source, ImageErrorCode.TooLarge, $"{image.Bytes} bytes is more than the limit of {decoder.Limits.MaxBytes}"));
            return null;
        }
        if (!checkContent)
        {
            return image; // as listed; training skips it if it does not read or decode
        }
        byte[] bytes;
        try
        {
            bytes = await image.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException || e is RequestFailedException { Status: 404 })
        {
            skipped.Add(new SkippedImage(image.Source, SkipCodes.Missing, "is listed but does not exist"));
            return null;
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
        return spool is null
            ? image with { Bytes = bytes.Length }
            : image with { Bytes = bytes.Length, ReadAsync = spool.Add(bytes) };
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
        foreach (var line in images.Select(i => i.Labels is null ? $"{i.Source}:{i.Bytes}" : $"{i.Source}:{i.Bytes}:{i.Label}").Order(StringComparer.Ordinal))
        {
            text.Append(line).Append('\n');
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
