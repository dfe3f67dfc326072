using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// The one rule that keeps <c>predictions/&lt;image&gt;.json</c> in step with <c>images/&lt;image&gt;</c>, used by the
/// Functions app's blob triggers and sweep and by TrainJob's <c>classify --container</c> backfill:
/// <list type="bullet">
/// <item>a prediction records the image version (ETag) it describes; when it describes the current version,
/// nothing is done (re-deliveries write nothing);</item>
/// <item>an image without a prediction, or whose prediction describes an older version (the image was uploaded
/// again under the same name), is read at exactly the version that was checked and classified; the prediction
/// is written conditionally (new: If-None-Match *, replacement: If-Match on the old prediction), so of two
/// writers exactly one wins;</item>
/// <item>a deleted image's prediction is removed (deleted, conditionally on the ETag that was seen);</item>
/// <item>with a review queue, an <c>ok</c> prediction that is unknown, low-margin or out of distribution is offered to
/// it before the prediction is written, so a failure there is retried with the write (the queue lists an image
/// version once, however often it is offered).</item>
/// </list>
/// Bad input becomes a <c>rejected</c> prediction; an image whose name leaves no room for <c>.json</c> is refused before
/// anything is read (<see cref="PredictionOutcome.NameTooLong"/>: no prediction can exist for it); storage failures propagate.
/// </summary>
public static class PredictionUpdater
{
    /// <summary>Reads the image's properties and its prediction's (two HEAD requests).</summary>
    public static async Task<ImageCheck> CheckAsync(BlobClient image, string name, BlobContainerClient predictions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        var existing = await PredictionBlobs.GetAsync(predictions, name, cancellationToken).ConfigureAwait(false);
        try
        {
            var properties = (await image.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            return new ImageCheck(name, true, PredictionBlobs.VersionOf(properties.ETag), properties.ETag, properties.ContentLength, properties.LastModified, existing);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return new ImageCheck(name, false, null, default, 0, default, existing);
        }
    }

    /// <summary>Checks, then classifies and writes when needed; a prediction of a deleted image is removed.</summary>
    public static async Task<PredictionOutcome> UpdateAsync(
        BlobClient image, string name, BlobContainerClient predictions, PredictionClassifier classifier, string source, ReviewQueue? review = null, CancellationToken cancellationToken = default)
    {
        if (!PredictionDocument.CanStoreFor(name))
        {
            return PredictionOutcome.NameTooLong;
        }
        var check = await CheckAsync(image, name, predictions, cancellationToken).ConfigureAwait(false);
        if (!check.Exists)
        {
            return await RemoveAsync(predictions, check, cancellationToken).ConfigureAwait(false);
        }
        return check.IsCurrent
            ? PredictionOutcome.AlreadyDone
            : await ClassifyAndWriteAsync(image, check, predictions, classifier, source, review, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Classifies the image version that <paramref name="check"/> saw and writes its prediction (replacing the
    /// one <paramref name="check"/> saw, if any). <see cref="PredictionOutcome.Superseded"/> when the image was
    /// overwritten meanwhile, <see cref="PredictionOutcome.ImageGone"/> when it was deleted,
    /// <see cref="PredictionOutcome.AlreadyDone"/> when another writer got there first.
    /// </summary>
    public static async Task<PredictionOutcome> ClassifyAndWriteAsync(
        BlobClient image, ImageCheck check, BlobContainerClient predictions, PredictionClassifier classifier, string source, ReviewQueue? review = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(check);
        ArgumentNullException.ThrowIfNull(classifier);
        if (!check.Exists)
        {
            throw new ArgumentException($"{check.Name} does not exist; there is nothing to classify.", nameof(check));
        }
        PredictionDocument document;
        try
        {
            var bytes = await ImageBlobs.ReadAsync(image, check.ETag, check.Length, classifier.Decoder, cancellationToken).ConfigureAwait(false);
            var classification = await classifier.ClassifyAsync(bytes, cancellationToken).ConfigureAwait(false);
            document = PredictionDocument.FromClassification(check.Name, classification, classifier.ModelVersion, source) with { Model = classifier.Model };
        }
        catch (ImageRejectedException e)
        {
            document = PredictionDocument.FromRejection(check.Name, e, classifier.ModelVersion, source) with { Model = classifier.Model };
        }
        catch (RequestFailedException e) when (e.Status == 404 && e.ErrorCode == BlobErrorCode.BlobNotFound)
        {
            return PredictionOutcome.ImageGone;
        }
        catch (RequestFailedException e) when (e.Status is 304 or 412)
        {
            return PredictionOutcome.Superseded;
        }
        document = document with { ImageVersion = check.Version };
        if (review is not null && document.Status == PredictionStatus.Ok)
        {
            await review.OfferAsync(document, cancellationToken).ConfigureAwait(false);
        }
        if (!await PredictionBlobs.TryWriteAsync(predictions, document, check.Existing?.ETag, cancellationToken).ConfigureAwait(false))
        {
            return PredictionOutcome.AlreadyDone;
        }
        return document.Status == PredictionStatus.Ok ? PredictionOutcome.Classified : PredictionOutcome.Rejected;
    }

    /// <summary>
    /// For an image <paramref name="check"/> found missing: removes the prediction it saw (if still the same one).
    /// Returns <see cref="PredictionOutcome.ImageGone"/> when there was none to remove.
    /// </summary>
    public static async Task<PredictionOutcome> RemoveAsync(BlobContainerClient predictions, ImageCheck check, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(check);
        if (check.Exists)
        {
            throw new ArgumentException($"{check.Name} exists; its prediction stays.", nameof(check));
        }
        return check.Existing is { } existing && await PredictionBlobs.TryDeleteAsync(predictions, check.Name, existing.ETag, cancellationToken).ConfigureAwait(false)
            ? PredictionOutcome.Removed
            : PredictionOutcome.ImageGone;
    }
}
