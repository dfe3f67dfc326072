using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>Writes prediction documents to the predictions container without ever replacing one.</summary>
public static class PredictionBlobs
{
    /// <summary>
    /// Writes <c>&lt;image&gt;.json</c> only if it does not exist yet (If-None-Match: *), so a retry, a
    /// second trigger or a backfill never clobbers a prediction. Returns false when one was already there.
    /// A missing predictions container is created once and the write retried.
    /// </summary>
    public static async Task<bool> TryWriteAsync(BlobContainerClient predictions, PredictionDocument document, CancellationToken cancellationToken = default)
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
            Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" },
        };
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                await target.UploadAsync(content, options, cancellationToken).ConfigureAwait(false);
                return true;
            }
            catch (RequestFailedException e) when (e.Status is 409 or 412 && e.ErrorCode != BlobErrorCode.ContainerNotFound)
            {
                return false;
            }
            catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound && attempt == 0)
            {
                await predictions.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
