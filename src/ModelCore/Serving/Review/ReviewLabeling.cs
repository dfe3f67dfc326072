using Azure;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// Turns a person's label for a listed upload into training data: the one rule behind <c>trainjob review import</c>
/// and the review page's confirm button. The image goes to <c>&lt;label&gt;/&lt;file&gt;</c> of the training data
/// (<see cref="TrainingImages"/>: never overwriting), then its item leaves the queue (conditionally on the item
/// that was labelled, so an item replaced meanwhile by a newer upload stays).
/// </summary>
public static class ReviewLabeling
{
    /// <summary>The training file name of an image blob: its name with '/' turned into '_' (one folder per label).</summary>
    public static string FileNameFor(string image)
    {
        ArgumentException.ThrowIfNullOrEmpty(image);
        var name = string.Concat(image.Select(c => c is '/' or '\\' or ':' || char.IsControl(c) ? '_' : c)).TrimStart('.');
        return name.Length == 0 ? "image" : name.Length > 200 ? name[^200..] : name;
    }

    /// <summary>
    /// Adds <paramref name="content"/> (the image a person looked at) under <paramref name="label"/>, or discards
    /// it when <paramref name="label"/> is null, then removes the image's item when it still lists <paramref name="imageVersion"/>.
    /// </summary>
    public static async Task<(LabelOutcome Outcome, string? TrainingName)> ApplyAsync(ReviewQueue queue, TrainingImages training, string image, string imageVersion,
        string? label, string fileName, ReadOnlyMemory<byte> content, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(training);
        var queued = await queue.GetAsync(image, cancellationToken).ConfigureAwait(false);
        var listed = queued is not null && queued.Item.ImageVersion == imageVersion;
        if (label is null)
        {
            return (listed && await queue.RemoveAsync(image, queued!.ETag, cancellationToken).ConfigureAwait(false) ? LabelOutcome.Discarded : LabelOutcome.NotQueued, null);
        }
        var added = await training.AddAsync(label, fileName, content, cancellationToken).ConfigureAwait(false);
        if (listed)
        {
            await queue.RemoveAsync(image, queued!.ETag, cancellationToken).ConfigureAwait(false);
        }
        return (added.AlreadyPresent ? LabelOutcome.AlreadyPresent : LabelOutcome.Added, added.Name);
    }

    /// <summary>
    /// The review page's path: reads the listed image version from the images container (within the decoder's byte
    /// limit), then <see cref="ApplyAsync"/>. <see cref="LabelOutcome.NotQueued"/> when the item is gone or lists
    /// another version, or the image was replaced or deleted since.
    /// </summary>
    public static async Task<(LabelOutcome Outcome, string? TrainingName)> ConfirmAsync(ReviewQueue queue, TrainingImages training, BlobContainerClient images, ImageDecoder decoder,
        string image, string imageVersion, string? label, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(images);
        var queued = await queue.GetAsync(image, cancellationToken).ConfigureAwait(false);
        if (queued is null || queued.Item.ImageVersion != imageVersion)
        {
            return (LabelOutcome.NotQueued, null);
        }
        ReadOnlyMemory<byte> content = default;
        if (label is not null)
        {
            try
            {
                var blob = images.GetBlobClient(image);
                var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                if (PredictionBlobs.VersionOf(properties.Value.ETag) != imageVersion)
                {
                    return (LabelOutcome.NotQueued, null);
                }
                content = await ImageBlobs.ReadAsync(blob, properties.Value.ETag, properties.Value.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                return (LabelOutcome.NotQueued, null);
            }
        }
        return await ApplyAsync(queue, training, image, imageVersion, label, FileNameFor(image), content, cancellationToken).ConfigureAwait(false);
    }
}
