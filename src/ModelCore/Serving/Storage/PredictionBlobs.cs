using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>A prediction blob as stored: its own ETag, the image version it describes, and when it was written.</summary>
public sealed record StoredPrediction(ETag ETag, string? ImageVersion, DateTimeOffset LastModified)
{
    /// <summary>
    /// True when this prediction describes the image version <paramref name="imageVersion"/> (written
    /// <paramref name="imageLastModified"/>). A prediction written before image versions were recorded has none;
    /// it counts as current unless the image was written after it.
    /// </summary>
    public bool Describes(string imageVersion, DateTimeOffset imageLastModified) => ImageVersion is null
        ? imageLastModified <= LastModified
        : string.Equals(ImageVersion, imageVersion, StringComparison.Ordinal);
}

/// <summary>
/// Reads and writes prediction blobs (<c>predictions/&lt;image&gt;.json</c>). Every write is conditional: a new
/// prediction with If-None-Match: *, a replacement with If-Match on the prediction it replaces, so of two writers
/// racing for the same image exactly one succeeds. The image version is also stored as blob metadata
/// (<see cref="ImageVersionMetadata"/>), so a HEAD request or a listing tells whether a prediction is current.
/// </summary>
public static class PredictionBlobs
{
    /// <summary>Metadata key of a prediction blob: the image version (ETag) it describes.</summary>
    public const string ImageVersionMetadata = "imageversion";

    /// <summary>The stored form of an image blob's ETag (without the quotes).</summary>
    public static string VersionOf(ETag imageETag) => imageETag.ToString().Trim('"');

    /// <summary>
    /// The prediction stored for an image, or null when there is none (or no predictions container yet). Read with a
    /// one-entry listing rather than a HEAD request: a missing prediction is the normal case for a new image, and a
    /// 404 would be logged by the Azure SDK as a warning with all its headers.
    /// </summary>
    public static async Task<StoredPrediction?> GetAsync(BlobContainerClient predictions, string imageName, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        var name = PredictionDocument.BlobNameFor(imageName);
        try
        {
            // The exact name sorts first among the names it prefixes.
            await foreach (var page in predictions.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, name, cancellationToken).AsPages(pageSizeHint: 1).ConfigureAwait(false))
            {
                return page.Values.FirstOrDefault(b => b.Name == name) is { } item ? From(item) : null;
            }
            return null;
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            return null;
        }
    }

    /// <summary>The stored prediction described by a listing entry (listed with <see cref="BlobTraits.Metadata"/>).</summary>
    public static StoredPrediction From(BlobItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        return From(item.Properties.ETag ?? default, item.Metadata, item.Properties.LastModified ?? DateTimeOffset.MinValue);
    }

    /// <summary>
    /// Writes <c>&lt;image&gt;.json</c> only if it does not exist yet (If-None-Match: *), so a retry, a
    /// second trigger or a backfill never clobbers a prediction. Returns false when one was already there.
    /// </summary>
    public static Task<bool> TryWriteAsync(BlobContainerClient predictions, PredictionDocument document, CancellationToken cancellationToken = default) =>
        TryWriteAsync(predictions, document, replacing: null, cancellationToken);

    /// <summary>
    /// Writes the prediction: a new one when <paramref name="replacing"/> is null (If-None-Match: *), otherwise
    /// in place of the prediction with that ETag (If-Match). Returns false when another writer got there first
    /// (the condition failed). A missing predictions container is created once and the write retried.
    /// </summary>
    public static async Task<bool> TryWriteAsync(BlobContainerClient predictions, PredictionDocument document, ETag? replacing, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(document);
        if (document.Image is null)
        {
            throw new ArgumentException("A stored prediction needs the image's blob name.", nameof(document));
        }
        var target = predictions.GetBlobClient(PredictionDocument.BlobNameFor(document.Image));
        var content = BinaryData.FromBytes(document.ToUtf8Bytes());
        var options = new BlobUploadOptions
        {
            Conditions = replacing is { } etag ? new BlobRequestConditions { IfMatch = etag } : new BlobRequestConditions { IfNoneMatch = ETag.All },
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" },
            Metadata = document.ImageVersion is { } version ? new Dictionary<string, string> { [ImageVersionMetadata] = version } : null,
        };
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await target.UploadAsync(content, options, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412 or 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                // 409/412: another writer was first; 404 (BlobNotFound) under If-Match: the prediction was removed meanwhile.
                return false;
            }
            catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound && attempt == 0)
            {
                await predictions.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Deletes a prediction if it is still the one with <paramref name="etag"/>; false when it changed or is gone.</summary>
    public static async Task<bool> TryDeleteAsync(BlobContainerClient predictions, string imageName, ETag etag, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        try
        {
            await predictions.GetBlobClient(PredictionDocument.BlobNameFor(imageName)).DeleteAsync(
                DeleteSnapshotsOption.IncludeSnapshots, new BlobRequestConditions { IfMatch = etag }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return false;
        }
    }

    private static StoredPrediction From(ETag etag, IDictionary<string, string>? metadata, DateTimeOffset lastModified) =>
        new(etag, metadata is not null && metadata.TryGetValue(ImageVersionMetadata, out var version) ? version : null, lastModified);
}
