using Azure.Storage.Queues;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Jobs;

/// <summary>
/// Starts a features job: uploads the extractor to <c>&lt;id&gt;/extractor/</c>, then cuts the images (blob names of
/// one container, each with the version whose features are wanted) into shards of at most <c>shardSize</c> and
/// enqueues them on the shard queue, which the Functions app's <c>ClassifyShard</c> consumes like a classify job's.
/// </summary>
public sealed class FeatureJobPlanner(JobStore jobs, QueueClient queue)
{
    public const int DefaultShardSize = 200;

    public async Task<JobRecord> StartAsync(string imagesContainer, string featureKey, FeatureExtractor extractor, IReadOnlyList<(string Blob, string Version)> images,
        int shardSize, Action<JobRecord>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(extractor);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        if (!FeatureStore.IsValidKey(featureKey))
        {
            throw new ArgumentException($"'{featureKey}' is not a feature key.", nameof(featureKey));
        }
        var job = new JobRecord
        {
            Id = JobIds.New(DateTimeOffset.UtcNow),
            Kind = JobKinds.Features,
            FeatureKey = featureKey,
            ImagesContainer = imagesContainer,
            CreatedAt = DateTimeOffset.UtcNow,
            ShardSize = shardSize,
        };
        await jobs.CreateAsync(job, cancellationToken).ConfigureAwait(false);
        await extractor.UploadAsync(jobs.Container, job.Id, cancellationToken).ConfigureAwait(false);
        await queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var items = new List<ShardItem>(shardSize);
        foreach (var (blob, version) in images)
        {
            items.Add(new ShardItem(blob, ImageExists: true, version));
            if (items.Count == shardSize)
            {
                job = await ShardPlanner.SendShardAsync(jobs, queue, job, items, cancellationToken).ConfigureAwait(false);
                progress?.Invoke(job);
            }
        }
        if (items.Count > 0)
        {
            job = await ShardPlanner.SendShardAsync(jobs, queue, job, items, cancellationToken).ConfigureAwait(false);
        }
        job = job with { ListingComplete = true };
        await jobs.UpdateAsync(job, cancellationToken).ConfigureAwait(false);
        progress?.Invoke(job);
        return job;
    }
}
