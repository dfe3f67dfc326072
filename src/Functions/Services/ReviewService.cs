using Azure;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// The review page's operations over ModelCore's review queue: list the queued uploads, a thumbnail of one, and a
/// person's label for one, which goes to the training container exactly as <c>trainjob review import</c> does
/// (<see cref="ReviewLabeling"/>).
/// </summary>
public sealed class ReviewService(ReviewQueue queue, ClassifierContainers containers, ImageDecoder decoder, ModelProvider models)
{
    public const int MaxItems = 100;

    public async Task<ReviewList> ListAsync(CancellationToken cancellationToken)
    {
        var cards = new List<ReviewCard>();
        var more = false;
        await foreach (var (item, _) in queue.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (cards.Count == MaxItems)
            {
                more = true;
                break;
            }
            cards.Add(new ReviewCard(item.Image, item.ImageVersion, item.SuggestedLabel, item.Label, item.Confidence, item.Margin,
                item.OutOfDistribution, item.UnknownReason, item.Reasons, item.QueuedUtc));
        }
        IReadOnlyList<string> labels = [];
        try
        {
            using var lease = await models.AcquireAsync(cancellationToken).ConfigureAwait(false);
            labels = lease.Model.Manifest.Labels;
        }
        catch (ModelUnavailableException)
        {
            // The queue can be labelled without a live model; the page then offers the suggested labels only.
        }
        return new ReviewList(cards, labels, more, await queue.CountTodayAsync(cancellationToken).ConfigureAwait(false), queue.Settings.MaxPerDay);
    }

    /// <summary>A thumbnail of a listed image version; null when it is not listed (or no longer exists in that version).</summary>
    public async Task<byte[]?> ThumbnailAsync(string image, CancellationToken cancellationToken)
    {
        if (await queue.GetAsync(image, cancellationToken).ConfigureAwait(false) is not { } queued)
        {
            return null;
        }
        try
        {
            var blob = containers.Images.GetBlobClient(image);
            var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            if (PredictionBlobs.VersionOf(properties.ETag) != queued.Item.ImageVersion)
            {
                return null;
            }
            var bytes = await ImageBlobs.ReadAsync(blob, properties.ETag, properties.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
            return Thumbnail.Jpeg(decoder, bytes);
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return null;
        }
    }

    /// <summary>Adds the listed image under <paramref name="label"/> (null: discards it) and removes it from the queue.</summary>
    public async Task<LabelResult> LabelAsync(string image, string imageVersion, string? label, CancellationToken cancellationToken)
    {
        var training = TrainingImages.Blobs(containers.Training ?? throw new InvalidOperationException("No training container is configured."), "");
        var (outcome, _) = await ReviewLabeling.ConfirmAsync(queue, training, containers.Images, decoder, image, imageVersion, label, cancellationToken).ConfigureAwait(false);
        return new LabelResult(outcome.ToString(), label);
    }
}
