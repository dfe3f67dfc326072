using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.Functions.Services;

/// <summary>What became of one uploaded image.</summary>
public enum UploadOutcome
{
    /// <summary>A prediction with status <c>ok</c> was written.</summary>
    Classified,

    /// <summary>A prediction with status <c>rejected</c> and the reason was written.</summary>
    Rejected,

    /// <summary>The image already had a prediction (a re-delivery, or the sweep and the trigger raced): nothing written.</summary>
    AlreadyDone,

    /// <summary>No model is live: nothing written; the sweep classifies the image once a model is published.</summary>
    NoModel,

    /// <summary>The image was deleted before it could be read: nothing to do.</summary>
    ImageGone,
}

/// <summary>
/// Classifies one blob of the images container into <c>predictions/&lt;name&gt;.json</c>; the one handler behind
/// both blob-trigger functions (polling and Event Grid) and the sweep.
/// <list type="bullet">
/// <item>Idempotent: an existing prediction means done; the write is conditional (If-None-Match: *), so of two
/// concurrent deliveries exactly one writes and the other counts as done.</item>
/// <item>Bad input is answered with a <c>rejected</c> prediction and a normal return, so the host does not retry it.
/// A blob over <see cref="ImageLimits.MaxBytes"/> is rejected from its properties, without downloading it.</item>
/// <item>No model yet: nothing is written and no exception is thrown. Throwing would make the host retry
/// <c>poisonBlobThreshold</c> times within seconds and then park the blob in the poison queue; instead
/// <c>SweepUnclassifiedImages</c> finds every image without a prediction once a model is live.</item>
/// <item>Storage failures propagate (logged here): the host retries, and after <c>poisonBlobThreshold</c>
/// (host.json) failures puts the blob on the <c>webjobs-blobtrigger-poison</c> queue.</item>
/// </list>
/// </summary>
public sealed class UploadedImageHandler(
    ClassifierContainers containers,
    ModelProvider models,
    ClassificationService classifier,
    ImageDecoder reader,
    ILogger<UploadedImageHandler> logger)
{
    public const string PredictionSuffix = ".json";

    public static string PredictionName(string imageName) => imageName + PredictionSuffix;

    public async Task<UploadOutcome> HandleAsync(BlobClient image, string name, string source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(image);
        var target = containers.Predictions.GetBlobClient(PredictionName(name));
        try
        {
            return await HandleCoreAsync(image, name, source, target, cancellationToken).ConfigureAwait(false);
        }
        catch (RequestFailedException e)
        {
            logger.ImageStorageFailed(e, name, source, e.Status, e.ErrorCode);
            throw;
        }
    }

    private async Task<UploadOutcome> HandleCoreAsync(BlobClient image, string name, string source, BlobClient target, CancellationToken cancellationToken)
    {
        if (await ExistsAsync(target, cancellationToken).ConfigureAwait(false))
        {
            logger.ImageAlreadyDone(name);
            return UploadOutcome.AlreadyDone;
        }
        string version;
        try
        {
            using var lease = await models.AcquireAsync(cancellationToken).ConfigureAwait(false);
            version = lease.Version;
        }
        catch (ModelUnavailableException e)
        {
            logger.ImageLeftForSweep(name, e.Message);
            return UploadOutcome.NoModel;
        }

        PredictionResult result;
        try
        {
            var bytes = await ReadAsync(image, cancellationToken).ConfigureAwait(false);
            var classified = await classifier.ClassifyAsync(bytes, top: null, threshold: null, cancellationToken).ConfigureAwait(false);
            result = PredictionResult.Ok(classified.Classification, classified.ModelVersion);
        }
        catch (ImageRejectedException e)
        {
            logger.ImageRejected(name, e.Code, e.Message);
            result = PredictionResult.Rejected(e, version);
        }
        catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode == BlobErrorCode.BlobNotFound)
        {
            logger.ImageGone(name);
            return UploadOutcome.ImageGone;
        }
        catch (ModelUnavailableException e)
        {
            logger.ImageLeftForSweep(name, e.Message);
            return UploadOutcome.NoModel;
        }

        result = result with { Image = name, Source = source, ClassifiedUtc = DateTimeOffset.UtcNow };
        if (!await WriteOnceAsync(target, result, cancellationToken).ConfigureAwait(false))
        {
            logger.ImageRaceLost(name);
            return UploadOutcome.AlreadyDone;
        }
        logger.ImageClassified(name, result.Status, result.Label ?? result.Error?.Code, result.ModelVersion, source);
        return result.Status == PredictionResult.StatusOk ? UploadOutcome.Classified : UploadOutcome.Rejected;
    }

    /// <summary>The blob's bytes; its size is checked from its properties first, and the read stops one byte past the limit regardless.</summary>
    private async Task<ReadOnlyMemory<byte>> ReadAsync(BlobClient image, CancellationToken cancellationToken)
    {
        var properties = await image.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        if (properties.Value.ContentLength > reader.Limits.MaxBytes)
        {
            throw new ImageRejectedException(ImageErrorCode.TooLarge,
                $"image is {properties.Value.ContentLength} bytes, over the limit of {reader.Limits.MaxBytes}");
        }
        // Pin the version whose size was checked: a blob overwritten meanwhile fails with 412 (and is retried).
        var download = await image.DownloadStreamingAsync(
            new BlobDownloadOptions { Conditions = new BlobRequestConditions { IfMatch = properties.Value.ETag } },
            cancellationToken).ConfigureAwait(false);
        await using var stream = download.Value.Content;
        return await reader.ReadAllBytesAsync(stream, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<bool> ExistsAsync(BlobClient blob, CancellationToken cancellationToken)
    {
        try
        {
            return (await blob.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value;
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            return false;
        }
    }

    /// <summary>Writes the prediction unless one exists; false when another writer was first.</summary>
    private async Task<bool> WriteOnceAsync(BlobClient target, PredictionResult result, CancellationToken cancellationToken)
    {
        var content = BinaryData.FromObjectAsJson(result, PredictionResult.JsonOptions);
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
                await containers.Predictions.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
