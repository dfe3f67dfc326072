using System.Globalization;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// The review queue: one blob per listed upload in the <c>review</c> container, <c>items/&lt;image name&gt;.json</c>
/// (a <see cref="ReviewItem"/>), and one counter blob per UTC day, <c>days/&lt;yyyy-MM-dd&gt;.json</c>, that bounds
/// how many are listed a day. Blobs rather than index tags: they work the same on Azurite and in Azure, need no
/// tag permissions, and a listing of <c>items/</c> is the queue, in name order. Offering a prediction costs
/// nothing when it is not a candidate, and four requests when it is (read the item, read and bump the day's
/// counter, write the item); every write is conditional, so a re-delivery, a retry or two racing writers list an
/// image version once. The counter is bumped before the item is written: a crash in between under-fills a
/// day, never overfills it.
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Naming", "CA1711:Identifiers should not have incorrect suffix", Justification = "The review queue is the product's name for it (README, docs); it is no collection type.")]
public sealed class ReviewQueue(BlobContainerClient container, ReviewSettings settings, TimeProvider? time = null)
{
    public const string ItemsPrefix = "items/";
    public const string DaysPrefix = "days/";
    private const string ImageVersionMetadata = "imageversion";

    public BlobContainerClient Container { get; } = container ?? throw new ArgumentNullException(nameof(container));

    public ReviewSettings Settings { get; } = settings ?? throw new ArgumentNullException(nameof(settings));

    public static string ItemBlobName(string image) => ItemsPrefix + image + PredictionDocument.BlobSuffix;

    /// <summary>Lists the prediction's image version for review when <see cref="ReviewReasons.For"/> gives a reason and today's bound allows.</summary>
    public async Task<ReviewOutcome> OfferAsync(PredictionDocument prediction, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        var reasons = ReviewReasons.For(prediction, Settings.MarginBelow);
        if (reasons.Count == 0 || prediction.Image is null || prediction.ImageVersion is null)
        {
            return ReviewOutcome.NotNeeded;
        }
        if (Settings.MaxPerDay <= 0)
        {
            return ReviewOutcome.Disabled;
        }
        if (ItemBlobName(prediction.Image).Length > PredictionDocument.MaxBlobNameLength)
        {
            return ReviewOutcome.NameTooLong; // refused by storage (400) otherwise, and the prediction's write with it
        }
        var existing = await FindAsync(ItemBlobName(prediction.Image), cancellationToken).ConfigureAwait(false);
        if (existing is { } e && e.Metadata.TryGetValue(ImageVersionMetadata, out var version) && version == prediction.ImageVersion)
        {
            return ReviewOutcome.AlreadyQueued;
        }
        var now = (time ?? TimeProvider.System).GetUtcNow();
        if (!await TryCountAsync(now, cancellationToken).ConfigureAwait(false))
        {
            return ReviewOutcome.DailyLimitReached;
        }
        var item = ReviewItem.From(prediction, reasons, now);
        var written = await TryUploadAsync(ItemBlobName(prediction.Image), item.ToUtf8Bytes(), existing?.Properties.ETag,
            new Dictionary<string, string> { [ImageVersionMetadata] = item.ImageVersion }, cancellationToken).ConfigureAwait(false);
        return written ? ReviewOutcome.Queued : ReviewOutcome.AlreadyQueued;
    }

    /// <summary>Every listed upload, in image-name order.</summary>
    public async IAsyncEnumerable<QueuedReview> ListAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (!(await Container.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value)
        {
            yield break;
        }
        await foreach (var blob in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, ItemsPrefix, cancellationToken).ConfigureAwait(false))
        {
            if (await ReadAsync(blob.Name, cancellationToken).ConfigureAwait(false) is { } queued)
            {
                yield return queued;
            }
        }
    }

    /// <summary>The listed item of an image, or null.</summary>
    public Task<QueuedReview?> GetAsync(string image, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(image);
        return ReadAsync(ItemBlobName(image), cancellationToken);
    }

    /// <summary>Removes an item if it is still the one with <paramref name="etag"/>; false when it changed or is gone.</summary>
    public async Task<bool> RemoveAsync(string image, ETag etag, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(image);
        try
        {
            await Container.GetBlobClient(ItemBlobName(image)).DeleteAsync(DeleteSnapshotsOption.IncludeSnapshots, new BlobRequestConditions { IfMatch = etag }, cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return false;
        }
    }

    /// <summary>Uploads listed today (UTC) so far.</summary>
    public async Task<int> CountTodayAsync(CancellationToken cancellationToken = default)
    {
        var (count, _) = await ReadCounterAsync(DayBlobName((time ?? TimeProvider.System).GetUtcNow()), cancellationToken).ConfigureAwait(false);
        return count;
    }

    private static string DayBlobName(DateTimeOffset now) => DaysPrefix + now.UtcDateTime.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture) + ".json";

    /// <summary>Takes one of today's places: false when they are all taken.</summary>
    private async Task<bool> TryCountAsync(DateTimeOffset now, CancellationToken cancellationToken)
    {
        var name = DayBlobName(now);
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var (count, etag) = await ReadCounterAsync(name, cancellationToken).ConfigureAwait(false);
            if (count >= Settings.MaxPerDay)
            {
                return false;
            }
            var body = JsonSerializer.SerializeToUtf8Bytes(new { day = name[DaysPrefix.Length..^5], count = count + 1 });
            if (await TryUploadAsync(name, body, etag, null, cancellationToken).ConfigureAwait(false))
            {
                return true;
            }
        }
        throw new InvalidOperationException($"The review queue's counter for {name[DaysPrefix.Length..^5]} kept changing under 20 attempts to update it.");
    }

    private async Task<(int Count, ETag? ETag)> ReadCounterAsync(string name, CancellationToken cancellationToken)
    {
        if (await FindAsync(name, cancellationToken).ConfigureAwait(false) is null)
        {
            return (0, null);
        }
        try
        {
            var download = await Container.GetBlobClient(name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            using var json = JsonDocument.Parse(download.Value.Content.ToMemory());
            return (json.RootElement.GetProperty("count").GetInt32(), download.Value.Details.ETag);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return (0, null);
        }
    }

    private async Task<QueuedReview?> ReadAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            var download = await Container.GetBlobClient(name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            return new QueuedReview(ReviewItem.Parse(download.Value.Content.ToMemory().Span), download.Value.Details.ETag);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>
    /// The blob's listing entry with its metadata, or null. A one-entry listing rather than a HEAD request: a missing
    /// blob is the normal case here, and a 404 would be logged by the Azure SDK as a warning with all its headers.
    /// </summary>
    private async Task<BlobItem?> FindAsync(string name, CancellationToken cancellationToken)
    {
        try
        {
            await foreach (var page in Container.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, name, cancellationToken).AsPages(pageSizeHint: 1).ConfigureAwait(false))
            {
                return page.Values.FirstOrDefault(b => b.Name == name);
            }
            return null;
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            return null;
        }
    }

    private Task<bool> TryUploadAsync(string name, byte[] content, ETag? replacing, IDictionary<string, string>? metadata, CancellationToken cancellationToken) =>
        ConditionalBlobs.TryUploadAsync(Container, name, BinaryData.FromBytes(content), replacing, "application/json", metadata, cancellationToken);
}
