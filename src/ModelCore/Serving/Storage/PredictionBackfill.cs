using System.Runtime.CompilerServices;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Finds and does the work that keeps the predictions container in step with the images container: the Functions
/// app's sweep and TrainJob's <c>classify --container</c> both run this, with <see cref="PredictionUpdater"/>'s rule
/// for each item. Both containers are listed once, in name order, side by side (a streaming merge): memory holds
/// the items found (at most the run's limit), never a whole listing; each listing is read only as far as the work found.
/// The prediction of image <c>n</c> is <c>n.json</c>; since appending <c>.json</c> does not keep name order
/// (<c>a.b.json</c> sorts before <c>a.json</c>), predictions read ahead wait in a small buffer: a prediction whose
/// stem sorts before the current image and was not matched has no image (an orphan), and only predictions of
/// names that extend the current image's name can wait longer. Every item is checked again (HEAD requests)
/// before anything is written or removed, so an unexpected listing order costs work, never a wrong result.
/// </summary>
public sealed class PredictionBackfill(BlobContainerClient images, BlobContainerClient predictions)
{
    /// <summary>
    /// The work, in image-name order: images without a current prediction (<paramref name="modifiedBefore"/>:
    /// younger images are left out), and predictions without an image.
    /// </summary>
    public async IAsyncEnumerable<BackfillItem> FindAsync(DateTimeOffset? modifiedBefore, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        await using var stored = ListPredictions(cancellationToken).GetAsyncEnumerator(cancellationToken);
        var next = await stored.MoveNextAsync().ConfigureAwait(false) ? stored.Current : default;
        var waiting = new SortedDictionary<string, StoredPrediction>(StringComparer.Ordinal);
        await foreach (var image in ListImages(cancellationToken).ConfigureAwait(false))
        {
            var target = PredictionDocument.BlobNameFor(image.Name);
            while (next.Name is not null && string.CompareOrdinal(next.Name, target) < 0)
            {
                waiting[Stem(next.Name)] = next.Prediction;
                next = await stored.MoveNextAsync().ConfigureAwait(false) ? stored.Current : default;
            }
            while (waiting.Count > 0 && string.CompareOrdinal(waiting.Keys.First(), image.Name) < 0)
            {
                var orphan = waiting.First();
                waiting.Remove(orphan.Key);
                yield return new BackfillItem(orphan.Key, ImageExists: false, orphan.Value);
            }
            StoredPrediction? prediction = null;
            if (next.Name == target)
            {
                prediction = next.Prediction;
                next = await stored.MoveNextAsync().ConfigureAwait(false) ? stored.Current : default;
            }
            else if (waiting.Remove(image.Name, out var early))
            {
                prediction = early;
            }
            var properties = image.Properties;
            var lastModified = properties.LastModified ?? DateTimeOffset.MinValue;
            if (modifiedBefore is { } limit && lastModified > limit)
            {
                continue;
            }
            var version = properties.ETag is { } etag ? PredictionBlobs.VersionOf(etag) : "";
            if (prediction is null || !prediction.Describes(version, lastModified))
            {
                yield return new BackfillItem(image.Name, ImageExists: true, prediction);
            }
        }
        foreach (var (name, prediction) in waiting)
        {
            yield return new BackfillItem(name, ImageExists: false, prediction);
        }
        while (next.Name is not null)
        {
            yield return new BackfillItem(Stem(next.Name), ImageExists: false, next.Prediction);
            next = await stored.MoveNextAsync().ConfigureAwait(false) ? stored.Current : default;
        }
    }

    /// <summary>
    /// Takes on at most <paramref name="maxItems"/> items of <see cref="FindAsync"/>, <paramref name="parallelism"/>
    /// at a time: an image goes to <paramref name="updateImage"/> (<see cref="PredictionUpdater.UpdateAsync"/> with
    /// the caller's classifier, or the Functions app's handler); an orphaned prediction is removed after a HEAD
    /// request shows its image is still gone. An item that throws is counted as failed and reported to
    /// <paramref name="failed"/>; the run goes on (only cancellation ends it). Two kinds of item take no place in the
    /// limit, so that they can never keep a bounded run from the items after them: images whose name is too long for a
    /// prediction (<see cref="PredictionDocument.CanStoreFor"/>: nothing can ever be written for them; counted, and the
    /// first named, in <see cref="BackfillReport.NamesTooLong"/>), and items <paramref name="passOver"/> names (the
    /// sweep passes over images that failed in recent runs).
    /// </summary>
    public async Task<BackfillReport> RunAsync(
        Func<string, CancellationToken, Task<PredictionOutcome>> updateImage,
        int maxItems = int.MaxValue,
        int parallelism = 1,
        DateTimeOffset? modifiedBefore = null,
        Action<string, Exception>? failed = null,
        Action<string, PredictionOutcome>? done = null,
        Func<string, bool>? passOver = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(updateImage);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxItems, 1);
        var work = new List<BackfillItem>();
        var limitReached = false;
        var passedOver = 0;
        var namesTooLong = 0;
        string? firstTooLong = null;
        await foreach (var item in FindAsync(modifiedBefore, cancellationToken).ConfigureAwait(false))
        {
            if (item.ImageExists && !PredictionDocument.CanStoreFor(item.Name))
            {
                namesTooLong++;
                firstTooLong ??= item.Name;
                continue;
            }
            if (passOver?.Invoke(item.Name) == true)
            {
                passedOver++;
                continue;
            }
            if (work.Count == maxItems)
            {
                limitReached = true;
                break;
            }
            work.Add(item);
        }
        var outcomes = new int[Enum.GetValues<PredictionOutcome>().Length];
        var failures = 0;
        await Parallel.ForEachAsync(work, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken }, async (item, token) =>
        {
            try
            {
                var outcome = item.ImageExists
                    ? await updateImage(item.Name, token).ConfigureAwait(false)
                    : await RemoveOrphanAsync(item, token).ConfigureAwait(false);
                Interlocked.Increment(ref outcomes[(int)outcome]);
                done?.Invoke(item.Name, outcome);
            }
            catch (Exception e) when (!token.IsCancellationRequested)
            {
                Interlocked.Increment(ref failures);
                failed?.Invoke(item.Name, e);
            }
        }).ConfigureAwait(false);
        return new BackfillReport(work.Count, outcomes[(int)PredictionOutcome.Classified], outcomes[(int)PredictionOutcome.Rejected],
            outcomes[(int)PredictionOutcome.AlreadyDone], outcomes[(int)PredictionOutcome.Removed], failures, limitReached)
        {
            PassedOver = passedOver,
            NamesTooLong = namesTooLong,
            FirstNameTooLong = firstTooLong,
        };
    }

    private async Task<PredictionOutcome> RemoveOrphanAsync(BackfillItem item, CancellationToken cancellationToken)
    {
        var check = await PredictionUpdater.CheckAsync(images.GetBlobClient(item.Name), item.Name, predictions, cancellationToken).ConfigureAwait(false);
        return check.Exists ? PredictionOutcome.AlreadyDone : await PredictionUpdater.RemoveAsync(predictions, check, cancellationToken).ConfigureAwait(false);
    }

    private static string Stem(string predictionName) => predictionName[..^PredictionDocument.BlobSuffix.Length];

    private async IAsyncEnumerable<BlobItem> ListImages([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var listing = images.GetBlobsAsync(cancellationToken: cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (await MoveNextOrEndAsync(listing).ConfigureAwait(false))
        {
            yield return listing.Current;
        }
    }

    private async IAsyncEnumerable<(string? Name, StoredPrediction Prediction)> ListPredictions([EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var listing = predictions.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, prefix: null, cancellationToken).GetAsyncEnumerator(cancellationToken);
        while (await MoveNextOrEndAsync(listing).ConfigureAwait(false))
        {
            if (listing.Current.Name.EndsWith(PredictionDocument.BlobSuffix, StringComparison.Ordinal))
            {
                yield return (listing.Current.Name, PredictionBlobs.From(listing.Current));
            }
        }
    }

    /// <summary>A container that does not exist lists as empty.</summary>
    private static async Task<bool> MoveNextOrEndAsync(IAsyncEnumerator<BlobItem> listing)
    {
        try
        {
            return await listing.MoveNextAsync().ConfigureAwait(false);
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            return false;
        }
    }
}
