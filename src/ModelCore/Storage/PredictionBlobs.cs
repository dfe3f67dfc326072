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
    /// </summary>
    public static async Task<bool> TryWriteAsync(BlobContainerClient predictions, PredictionDocument document, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(document);
        try
        {
            await predictions.GetBlobClient(PredictionDocument.BlobNameFor(document.Image)).UploadAsync(
                BinaryData.FromBytes(document.ToUtf8Bytes()),
                new BlobUploadOptions
                {
                    Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All },
                    HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" },
                },
                cancellationToken);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            return false;
        }
    }
}
