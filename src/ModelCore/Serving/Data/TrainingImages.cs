using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>Where an added training image went: its name under the training data's root, and whether it was there already.</summary>
public sealed record AddedTrainingImage(string Name, bool AlreadyPresent);

/// <summary>
/// The labelled training data, as <c>train</c> reads it (<see cref="TrainingLayout"/>: <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c>, or
/// under <c>train/</c> when the root has <c>train/</c> and <c>val/</c>): a local folder or a prefix of a blob container.
/// A label must pass <see cref="TrainingLayout.LabelProblem"/>, the rule training reads it by.
/// Images are only ever added: an existing file is never overwritten. The same bytes under the same name count as
/// present; other bytes under the name get the next free name (<c>name-2.png</c>, ...).
/// </summary>
public abstract class TrainingImages
{
    public abstract string Description { get; }

    public static TrainingImages Local(string folder) => new LocalTrainingImages(folder);

    public static TrainingImages Blobs(BlobContainerClient container, string prefix) => new BlobTrainingImages(container, prefix);

    /// <summary>Adds <paramref name="content"/> as <c>&lt;label&gt;/&lt;fileName&gt;</c> (or the next free name).</summary>
    public async Task<AddedTrainingImage> AddAsync(string label, string fileName, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        if (TrainingLayout.LabelProblem(label) is { } problem)
        {
            throw new ArgumentException($"The label \"{label}\" {problem}.", nameof(label));
        }
        if (!ModelManifest.IsPlainFileName(fileName))
        {
            throw new ArgumentException($"\"{fileName}\" is not a plain file name.", nameof(fileName));
        }
        var folder = await LabelFolderAsync(label, cancellationToken).ConfigureAwait(false);
        return await AddFileAsync($"{folder}/", fileName, content, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a multi-label model's image, the layout <c>train --multilabel</c> reads: the image at the root as
    /// <c>&lt;fileName&gt;</c> (or the next free name; never overwriting, the same bytes count as present) and its row
    /// <c>&lt;name&gt;,&lt;label;label&gt;</c> in the root's <see cref="MultiLabelCsv"/> (header <c>image,labels</c>;
    /// an empty cell is an image with no label, a legal negative). The image is written before its row, and the row is
    /// added only when that image has none, with a conditional write that is retried when another writer changed the
    /// file meanwhile: an interrupted add is finished by the next one and no row is lost to a concurrent one.
    /// </summary>
    /// <exception cref="ArgumentException">A label fails the label rule or contains ';', or the file name is not plain.</exception>
    public async Task<AddedTrainingImage> AddMultiLabelAsync(IReadOnlyList<string> labels, string fileName, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(labels);
        if (Review.ReviewLabeling.MultiLabelProblem(labels) is { } problem)
        {
            throw new ArgumentException($"Those labels cannot be used: {problem}.", nameof(labels));
        }
        if (!ModelManifest.IsPlainFileName(fileName))
        {
            throw new ArgumentException($"\"{fileName}\" is not a plain file name.", nameof(fileName));
        }
        var added = await AddFileAsync("", fileName, content, cancellationToken).ConfigureAwait(false);
        var row = Csv.Format([added.Name, string.Join(DataManifest.MultiLabelSeparator, labels.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))]);
        for (var attempt = 1; ; attempt++)
        {
            string? text;
            object? version;
            try
            {
                (text, version) = await ReadLabelsCsvAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (IOException) when (attempt < 50)
            {
                // A local labels.csv held by another writer (it is rewritten without sharing): read it again.
                await Task.Delay(TimeSpan.FromMilliseconds(20 * attempt), cancellationToken).ConfigureAwait(false);
                continue;
            }
            if (text is not null && HasRow(text, added.Name))
            {
                return added;
            }
            var updated = (text is null or "" ? MultiLabelCsvHeader + "\n" : text.EndsWith('\n') ? text : text + "\n") + row + "\n";
            if (await TryWriteLabelsCsvAsync(updated, version, cancellationToken).ConfigureAwait(false))
            {
                return added;
            }
            if (attempt == 50)
            {
                throw new InvalidOperationException($"{Description}: {MultiLabelCsv} kept changing while a row was added to it; try again.");
            }
            await Task.Delay(TimeSpan.FromMilliseconds(20 * attempt), cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>The multi-label layout's file of labels, beside the images: <c>image,labels</c>.</summary>
    public const string MultiLabelCsv = "labels.csv";

    private const string MultiLabelCsvHeader = "image,labels";

    private static bool HasRow(string text, string name)
    {
        using var reader = new StringReader(text);
        return Csv.ReadRecords(reader).Skip(1).Any(r => r.Count > 0 && r[0] == name);
    }

    /// <summary><paramref name="fileName"/> (or the next free name) under <paramref name="folder"/> (empty or ending in '/').</summary>
    private async Task<AddedTrainingImage> AddFileAsync(string folder, string fileName, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
    {
        var hash = SHA256.HashData(content.Span);
        var stem = Path.GetFileNameWithoutExtension(fileName);
        var extension = Path.GetExtension(fileName);
        for (var n = 1; n <= 1000; n++)
        {
            var name = $"{folder}{(n == 1 ? fileName : $"{stem}-{n}{extension}")}";
            if (string.Equals(name, MultiLabelCsv, StringComparison.OrdinalIgnoreCase))
            {
                continue; // the multi-label layout's own file
            }
            if (await TryCreateAsync(name, content, cancellationToken).ConfigureAwait(false))
            {
                return new AddedTrainingImage(name, AlreadyPresent: false);
            }
            if (await HashOfAsync(name, cancellationToken).ConfigureAwait(false) is { } existing && existing.AsSpan().SequenceEqual(hash))
            {
                return new AddedTrainingImage(name, AlreadyPresent: true);
            }
        }
        throw new InvalidOperationException($"{Description}: 1000 images named like {folder}{fileName} exist already.");
    }

    /// <summary><c>&lt;label&gt;</c>, or <c>train/&lt;label&gt;</c> when the data has fixed <c>train/</c> and <c>val/</c> splits.</summary>
    private async Task<string> LabelFolderAsync(string label, CancellationToken cancellationToken) =>
        await HasFolderAsync(TrainingLayout.TrainFolder, cancellationToken).ConfigureAwait(false) && await HasFolderAsync(TrainingLayout.ValFolder, cancellationToken).ConfigureAwait(false)
            ? $"{TrainingLayout.TrainFolder}/{label}"
            : label;

    protected abstract Task<bool> HasFolderAsync(string name, CancellationToken cancellationToken);

    /// <summary>Creates the file only if no file has that name; false when one does.</summary>
    protected abstract Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken);

    protected abstract Task<byte[]?> HashOfAsync(string name, CancellationToken cancellationToken);

    /// <summary>The text of <see cref="MultiLabelCsv"/> (null when there is none) and a version for <see cref="TryWriteLabelsCsvAsync"/>.</summary>
    protected abstract Task<(string? Text, object? Version)> ReadLabelsCsvAsync(CancellationToken cancellationToken);

    /// <summary>Replaces <see cref="MultiLabelCsv"/> only if it is still the version read (none: only if it does not exist); false otherwise.</summary>
    protected abstract Task<bool> TryWriteLabelsCsvAsync(string text, object? version, CancellationToken cancellationToken);

    private sealed class LocalTrainingImages(string root) : TrainingImages
    {
        public override string Description => root;

        private string LabelsPath => Path.Combine(root, MultiLabelCsv);

        protected override async Task<(string? Text, object? Version)> ReadLabelsCsvAsync(CancellationToken cancellationToken)
        {
            if (!File.Exists(LabelsPath))
            {
                return (null, null);
            }
            var text = await File.ReadAllTextAsync(LabelsPath, cancellationToken).ConfigureAwait(false);
            return (text, text);
        }

        protected override async Task<bool> TryWriteLabelsCsvAsync(string text, object? version, CancellationToken cancellationToken)
        {
            Directory.CreateDirectory(root);
            try
            {
                // Held open without sharing while it is compared and rewritten: another writer gets an IOException and reads again.
                await using var stream = new FileStream(LabelsPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
                using var reader = new StreamReader(stream, leaveOpen: true);
                var current = await reader.ReadToEndAsync(cancellationToken).ConfigureAwait(false);
                if (current != ((string?)version ?? ""))
                {
                    return false;
                }
                var bytes = new System.Text.UTF8Encoding(false).GetBytes(text);
                stream.SetLength(0);
                await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (IOException)
            {
                return false;
            }
        }

        protected override Task<bool> HasFolderAsync(string name, CancellationToken cancellationToken) => Task.FromResult(Directory.Exists(Path.Combine(root, name)));

        protected override async Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
        {
            var path = Path.Combine(root, name);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            try
            {
                await using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
                await stream.WriteAsync(content, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (IOException) when (File.Exists(path))
            {
                return false;
            }
        }

        protected override async Task<byte[]?> HashOfAsync(string name, CancellationToken cancellationToken)
        {
            var path = Path.Combine(root, name);
            if (!File.Exists(path))
            {
                return null;
            }
            await using var stream = File.OpenRead(path);
            return await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false);
        }
    }

    private sealed class BlobTrainingImages(BlobContainerClient container, string prefix) : TrainingImages
    {
        private readonly string prefix = prefix.Length == 0 || prefix.EndsWith('/') ? prefix : prefix + "/";

        public override string Description => $"{container.Name}/{prefix}";

        protected override async Task<(string? Text, object? Version)> ReadLabelsCsvAsync(CancellationToken cancellationToken)
        {
            try
            {
                var download = await container.GetBlobClient(prefix + MultiLabelCsv).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
                return (download.Value.Content.ToString(), download.Value.Details.ETag);
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return (null, null);
            }
        }

        protected override async Task<bool> TryWriteLabelsCsvAsync(string text, object? version, CancellationToken cancellationToken)
        {
            var conditions = version is ETag etag ? new BlobRequestConditions { IfMatch = etag } : new BlobRequestConditions { IfNoneMatch = ETag.All };
            try
            {
                await container.GetBlobClient(prefix + MultiLabelCsv).UploadAsync(BinaryData.FromString(text),
                    new BlobUploadOptions { Conditions = conditions, HttpHeaders = new BlobHttpHeaders { ContentType = "text/csv" } }, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412)
            {
                return false;
            }
        }

        protected override async Task<bool> HasFolderAsync(string name, CancellationToken cancellationToken)
        {
            try
            {
                await foreach (var page in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, $"{prefix}{name}/", cancellationToken).AsPages(pageSizeHint: 1).ConfigureAwait(false))
                {
                    return page.Values.Count > 0;
                }
                return false;
            }
            catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
            {
                return false;
            }
        }

        protected override async Task<bool> TryCreateAsync(string name, ReadOnlyMemory<byte> content, CancellationToken cancellationToken)
        {
            var options = new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } };
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await container.GetBlobClient(prefix + name).UploadAsync(BinaryData.FromBytes(content), options, cancellationToken).ConfigureAwait(false);
                    return true;
                }
                catch (RequestFailedException e) when (e.Status is 409 or 412 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
                {
                    return false;
                }
                catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound && attempt == 0)
                {
                    await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                }
            }
        }

        protected override async Task<byte[]?> HashOfAsync(string name, CancellationToken cancellationToken)
        {
            try
            {
                var download = await container.GetBlobClient(prefix + name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
                return SHA256.HashData(download.Value.Content.ToMemory().Span);
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return null;
            }
        }
    }
}
