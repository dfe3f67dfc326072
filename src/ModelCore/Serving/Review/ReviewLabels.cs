using System.Security.Cryptography;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>A staged label and the ETag of its record (for a conditional removal).</summary>
public sealed record StagedLabel(LabelRecord Record, ETag ETag);

/// <summary>
/// The labels people gave to listed uploads, in the review queue's container: a label waits for an Approver in
/// <c>staged/&lt;id&gt;.json</c> (its <see cref="LabelRecord"/>) beside <c>staged/&lt;id&gt;.image</c> (the bytes that
/// were labelled, so what is approved is what the reviewer saw, whatever happens to the upload meanwhile); a decided
/// label, and a discard, is <c>records/&lt;id&gt;.json</c>, written once (If-None-Match: *) and never changed. Training
/// never reads this container: only an approval (<see cref="ReviewLabeling.DecideAsync"/>) adds an image to the
/// training data.
/// </summary>
public sealed class ReviewLabels(BlobContainerClient container)
{
    public const string StagedPrefix = "staged/";
    public const string RecordsPrefix = "records/";
    private const string RecordSuffix = ".json";
    private const string ImageSuffix = ".image";

    public BlobContainerClient Container { get; } = container ?? throw new ArgumentNullException(nameof(container));

    /// <summary>
    /// Stages <paramref name="record"/> with the labelled bytes: the bytes first, then the record (If-None-Match: *), so a
    /// staged record always has its bytes. False when a label of this image version is staged already (nothing changed).
    /// </summary>
    public async Task<bool> StageAsync(LabelRecord record, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.IsDiscard || record.Decision is not null)
        {
            throw new ArgumentException("Only an undecided label is staged.", nameof(record));
        }
        // A copy left by an attempt that stopped before its record holds the same bytes (same image version): keep it.
        await ConditionalBlobs.TryUploadAsync(Container, StagedPrefix + record.Id + ImageSuffix, BinaryData.FromBytes(content), null, "application/octet-stream", null, cancellationToken).ConfigureAwait(false);
        return await ConditionalBlobs.TryUploadAsync(Container, StagedPrefix + record.Id + RecordSuffix, BinaryData.FromBytes(record.ToUtf8Bytes()), null, "application/json", null, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every staged label, in id order.</summary>
    public async IAsyncEnumerable<StagedLabel> ListStagedAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var name in NamesAsync(StagedPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (name.EndsWith(RecordSuffix, StringComparison.Ordinal) && await GetStagedAsync(name[StagedPrefix.Length..^RecordSuffix.Length], cancellationToken).ConfigureAwait(false) is { } staged)
            {
                yield return staged;
            }
        }
    }

    /// <summary>The staged label with this id, or null.</summary>
    public async Task<StagedLabel?> GetStagedAsync(string id, CancellationToken cancellationToken = default) =>
        await ReadAsync(StagedPrefix + CheckId(id) + RecordSuffix, cancellationToken).ConfigureAwait(false) is var (record, etag) ? new StagedLabel(record, etag) : null;

    /// <summary>The bytes staged with <paramref name="record"/>; their length and SHA-256 must be the record's.</summary>
    /// <exception cref="InvalidDataException">The staged bytes are missing or are not the ones that were labelled.</exception>
    public async Task<byte[]> ReadStagedImageAsync(LabelRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        byte[] bytes;
        try
        {
            var download = await Container.GetBlobClient(StagedPrefix + CheckId(record.Id) + ImageSuffix).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            bytes = download.Value.Content.ToArray();
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new InvalidDataException($"The image staged with label {record.Id} ({record.Image}) is missing.", e);
        }
        if (bytes.Length != record.ContentLength || Convert.ToHexStringLower(SHA256.HashData(bytes)) != record.ContentSha256)
        {
            throw new InvalidDataException($"The image staged with label {record.Id} ({record.Image}) is not the one that was labelled (its length or SHA-256 differs).");
        }
        return bytes;
    }

    /// <summary>Removes a staged label (If-Match on its record), then its bytes; false when the record changed or is gone.</summary>
    public async Task<bool> RemoveStagedAsync(StagedLabel staged, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(staged);
        var id = CheckId(staged.Record.Id);
        try
        {
            await Container.GetBlobClient(StagedPrefix + id + RecordSuffix).DeleteAsync(DeleteSnapshotsOption.IncludeSnapshots, new BlobRequestConditions { IfMatch = staged.ETag }, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return false;
        }
        await Container.GetBlobClient(StagedPrefix + id + ImageSuffix).DeleteIfExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>Writes a decided record once (If-None-Match: *); false when this image version has a record already.</summary>
    public Task<bool> TryRecordAsync(LabelRecord record, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Decision is null || record.DecidedBy is null || record.DecidedUtc is null)
        {
            throw new ArgumentException("Only a decided label is recorded.", nameof(record));
        }
        return ConditionalBlobs.TryUploadAsync(Container, RecordsPrefix + CheckId(record.Id) + RecordSuffix, BinaryData.FromBytes(record.ToUtf8Bytes()), null, "application/json", null, cancellationToken);
    }

    /// <summary>The decided record of this id, or null.</summary>
    public async Task<LabelRecord?> GetRecordAsync(string id, CancellationToken cancellationToken = default) =>
        (await ReadAsync(RecordsPrefix + CheckId(id) + RecordSuffix, cancellationToken).ConfigureAwait(false))?.Record;

    /// <summary>Every decided record (approved, rejected, discarded), in id order.</summary>
    public async IAsyncEnumerable<LabelRecord> ListRecordsAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await foreach (var name in NamesAsync(RecordsPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (await ReadAsync(name, cancellationToken).ConfigureAwait(false) is var (record, _))
            {
                yield return record;
            }
        }
    }

    private static string CheckId(string id) => LabelRecord.IsId(id) ? id : throw new ArgumentException($"\"{id}\" is not a label id.", nameof(id));

    private async IAsyncEnumerable<string> NamesAsync(string prefix, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        if (!(await Container.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value)
        {
            yield break;
        }
        await foreach (var blob in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken).ConfigureAwait(false))
        {
            yield return blob.Name;
        }
    }

    private async Task<(LabelRecord Record, ETag ETag)?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var download = await Container.GetBlobClient(name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            return (LabelRecord.Parse(download.Value.Content.ToMemory().Span), download.Value.Details.ETag);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }
}
