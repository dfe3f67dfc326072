using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

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
    public async Task<UploadOutcome> HandleAsync(BlobClient image, string name, string source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(image);
        var target = containers.Predictions.GetBlobClient(PredictionDocument.BlobNameFor(name));
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

        PredictionDocument result;
        try
        {
            var bytes = await ImageBlobs.ReadAsync(image, reader, cancellationToken).ConfigureAwait(false);
            var classified = await classifier.ClassifyAsync(bytes, top: null, threshold: null, cancellationToken).ConfigureAwait(false);
            result = PredictionDocument.FromClassification(name, classified.Classification, classified.ModelVersion, source);
        }
        catch (ImageRejectedException e)
        {
            logger.ImageRejected(name, e.Code, e.Message);
            result = PredictionDocument.FromRejection(name, e, version, source);
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

        if (!await PredictionBlobs.TryWriteAsync(containers.Predictions, result, cancellationToken).ConfigureAwait(false))
        {
            logger.ImageRaceLost(name);
            return UploadOutcome.AlreadyDone;
        }
        logger.ImageClassified(name, result.Status, result.Label ?? result.Error?.Code, result.ModelVersion, source);
        return result.Status == PredictionStatus.Ok ? UploadOutcome.Classified : UploadOutcome.Rejected;
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
}
