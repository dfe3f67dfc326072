using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Jobs;

/// <summary>
/// Starts a fanned-out classification: lists the images and predictions containers once (the backfill's streaming
/// merge, <see cref="PredictionBackfill.FindAsync"/>, so only images without a current prediction and predictions
/// of deleted images become work), cuts the work into shards of at most <c>shardSize</c> items, writes each shard's
/// work to the jobs container and then enqueues its message. Memory holds one shard. The job record is updated as
/// shards go out and marked complete at the end; a crash leaves it incomplete, and running again starts a new job
/// with only what is still missing (shards already queued are finished by the consumers either way). Images whose
/// name is too long for a prediction (<see cref="Inference.PredictionDocument.CanStoreFor"/>) are left out: nothing
/// can ever be written for them.
/// </summary>
public sealed class ShardPlanner(BlobContainerClient images, BlobContainerClient predictions, JobStore jobs, QueueClient queue)
{
    public const int DefaultShardSize = 200;

    /// <summary>Messages never expire: a shard waits on the queue however long the consumers are away.</summary>
    private static readonly TimeSpan NeverExpires = TimeSpan.FromSeconds(-1);

    public async Task<JobRecord> StartAsync(int shardSize, Action<JobRecord>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(shardSize, 1);
        var job = new JobRecord
        {
            Id = JobIds.New(DateTimeOffset.UtcNow),
            Kind = JobKinds.Classify,
            ImagesContainer = images.Name,
            CreatedAt = DateTimeOffset.UtcNow,
            ShardSize = shardSize,
        };
        await jobs.CreateAsync(job, cancellationToken).ConfigureAwait(false);
        await queue.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        var items = new List<ShardItem>(shardSize);
        await foreach (var item in new PredictionBackfill(images, predictions).FindAsync(modifiedBefore: null, cancellationToken).ConfigureAwait(false))
        {
            if (item.ImageExists && !Inference.PredictionDocument.CanStoreFor(item.Name))
            {
                continue;
            }
            items.Add(new ShardItem(item.Name, item.ImageExists));
            if (items.Count == shardSize)
            {
                job = await SendAsync(job, items, cancellationToken).ConfigureAwait(false);
                progress?.Invoke(job);
            }
        }
        if (items.Count > 0)
        {
            job = await SendAsync(job, items, cancellationToken).ConfigureAwait(false);
        }
        job = job with { ListingComplete = true };
        await jobs.UpdateAsync(job, cancellationToken).ConfigureAwait(false);
        progress?.Invoke(job);
        return job;
    }

    private Task<JobRecord> SendAsync(JobRecord job, List<ShardItem> items, CancellationToken cancellationToken) => SendShardAsync(jobs, queue, job, items, cancellationToken);

    /// <summary>Writes the items as the job's next shard, then enqueues its message, and records the shard in the job (the items are cleared).</summary>
    internal static async Task<JobRecord> SendShardAsync(JobStore jobs, QueueClient queue, JobRecord job, List<ShardItem> items, CancellationToken cancellationToken)
    {
        var shard = job.Shards;
        await jobs.WriteShardAsync(new ShardWork(job.Id, shard, [.. items]) { Kind = job.Kind }, cancellationToken).ConfigureAwait(false);
        await queue.SendMessageAsync(new ShardMessage(job.Id, shard).ToJson(), visibilityTimeout: TimeSpan.Zero, timeToLive: NeverExpires, cancellationToken).ConfigureAwait(false);
        job = job with { Shards = shard + 1, Items = job.Items + items.Count };
        items.Clear();
        await jobs.UpdateAsync(job, cancellationToken).ConfigureAwait(false);
        return job;
    }
}
