using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>Conditional writes of small blobs, shared by the review queue and its label records.</summary>
internal static class ConditionalBlobs
{
    /// <summary>
    /// A new blob (If-None-Match: *) or a replacement of the one with <paramref name="replacing"/> (If-Match); false when
    /// another writer was first. A missing container is created once.
    /// </summary>
    public static async Task<bool> TryUploadAsync(BlobContainerClient container, string name, BinaryData content, ETag? replacing, string contentType,
        IDictionary<string, string>? metadata, CancellationToken cancellationToken)
    {
        var options = new BlobUploadOptions
        {
            Conditions = replacing is { } etag ? new BlobRequestConditions { IfMatch = etag } : new BlobRequestConditions { IfNoneMatch = ETag.All },
            HttpHeaders = new BlobHttpHeaders { ContentType = contentType },
            Metadata = metadata,
        };
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await container.GetBlobClient(name).UploadAsync(content, options, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412 or 404 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                return false;
            }
            catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound && attempt == 0)
            {
                await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
