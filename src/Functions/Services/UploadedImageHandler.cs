using Azure;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// Brings <c>predictions/&lt;name&gt;.json</c> up to date with one blob of the images container; the one handler
/// behind both blob-trigger functions (polling and Event Grid) and the sweep. The rule is ModelCore's
/// <see cref="PredictionUpdater"/> (shared with TrainJob's backfill):
/// <list type="bullet">
/// <item>A prediction records the image version (ETag) it describes: a re-delivery of the same version writes
/// nothing; an image uploaded again under the same name is classified again and its prediction replaced. Writes
/// are conditional, so of concurrent deliveries exactly one writes.</item>
/// <item>A deleted image's prediction is removed (here when a delivery finds the image gone, and by the sweep).</item>
/// <item>Bad input is answered with a <c>rejected</c> prediction and a normal return, so the host does not retry it.
/// A blob over <see cref="ImageLimits.MaxBytes"/> is rejected from its properties, without downloading it. A name too long
/// for its prediction (<c>&lt;name&gt;.json</c> over 1,024 characters) is refused before any request and logged: no
/// prediction can exist for it, and a storage 400 thrown here would be retried and poisoned for nothing.</item>
/// <item>An uncertain prediction (unknown, low margin, out of distribution) is offered to the <see cref="ReviewQueue"/>.</item>
/// <item>One model lease per image: the version that classified it (or refused it) is the one the prediction names.
/// The model is chosen by <see cref="ModelRegistry.RouteBlobAsync"/>: the first segment of the blob's name when it names a
/// published model (<c>cats/photo.jpg</c>: model <c>cats</c>, whose predictions also carry <c>"model": "cats"</c>), else the
/// default model.</item>
/// <item>No model yet: nothing is written and no exception is thrown. Throwing would make the host retry
/// <c>poisonBlobThreshold</c> times within seconds and then park the blob in the poison queue; instead
/// <c>SweepUnclassifiedImages</c> finds every image without a prediction once a model is live.</item>
/// <item>Storage failures propagate (logged here): the host retries, and after <c>poisonBlobThreshold</c>
/// (host.json) failures puts the blob on the <c>webjobs-blobtrigger-poison</c> queue.</item>
/// </list>
/// </summary>
public sealed class UploadedImageHandler(
    ClassifierContainers containers,
    ModelRegistry models,
    ClassificationService classifier,
    ImageDecoder reader,
    ILogger<UploadedImageHandler> logger,
    ReviewQueue? review = null)
{
    public async Task<PredictionOutcome> HandleAsync(BlobClient image, string name, string source, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(image);
        try
        {
            var outcome = await HandleCoreAsync(image, name, source, cancellationToken).ConfigureAwait(false);
            logger.ImageHandled(name, outcome, source);
            return outcome;
        }
        catch (RequestFailedException e)
        {
            logger.ImageStorageFailed(e, name, source, e.Status, e.ErrorCode);
            throw;
        }
    }

    private async Task<PredictionOutcome> HandleCoreAsync(BlobClient image, string name, string source, CancellationToken cancellationToken)
    {
        if (!PredictionDocument.CanStoreFor(name))
        {
            logger.ImageNameTooLong(name, name.Length, PredictionDocument.MaxImageNameLength);
            return PredictionOutcome.NameTooLong;
        }
        var check = await PredictionUpdater.CheckAsync(image, name, containers.Predictions, cancellationToken).ConfigureAwait(false);
        if (!check.Exists)
        {
            return await PredictionUpdater.RemoveAsync(containers.Predictions, check, cancellationToken).ConfigureAwait(false);
        }
        if (check.IsCurrent)
        {
            return PredictionOutcome.AlreadyDone;
        }
        var model = await models.RouteBlobAsync(name, cancellationToken).ConfigureAwait(false);
        ModelLease lease;
        try
        {
            var live = await models.AcquireAsync(model, cancellationToken).ConfigureAwait(false);
            try
            {
                // During a canary release the blob's name picks the version (the same name always gets the same one).
                lease = await models.RouteAsync(model, live, System.Text.Encoding.UTF8.GetBytes(name), cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                live.Dispose();
                throw;
            }
        }
        catch (Exception e) when (e is ModelUnavailableException or ModelNotFoundException)
        {
            logger.ImageLeftForSweep(name, e.Message);
            return PredictionOutcome.NoModel;
        }
        using (lease)
        {
            var withLease = new PredictionClassifier(lease.Version, reader, async (bytes, token) =>
                (await classifier.ClassifyAsync(lease, bytes, top: null, threshold: null, token).ConfigureAwait(false)).Classification)
            {
                Model = model == ModelNames.Default ? null : model,
            };
            // Every model's uncertain uploads are listed; the item names its model, and an approved label goes to that model's
            // training data only (ReviewTrainingData).
            return await PredictionUpdater.ClassifyAndWriteAsync(image, check, containers.Predictions, withLease, source, review, cancellationToken).ConfigureAwait(false);
        }
    }
}
