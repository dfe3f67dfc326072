using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// One shard of a features job (<see cref="JobKinds.Features"/>): reads each image at the version the job listed
/// (If-Match: an image changed or deleted since is counted as changed and left to the trainer), decodes and
/// preprocesses it as training does, runs the job's extractor graph on batches, and writes the shard's features as
/// one file <c>&lt;key&gt;/job-&lt;id&gt;-&lt;shard&gt;.safetensors</c> of the feature store (a retry rewrites the same
/// file, so duplicates add nothing). An image that does not decode is counted as rejected and not stored. The
/// extractor of the last job seen is kept loaded, so an instance loads it once per job. Images are read and decoded
/// through <paramref name="decoder"/> (the app's: its limits and decode budget): a blob over the byte limit is
/// rejected from its properties, without a download.
/// </summary>
/// <param name="decoder">null: a decoder with the default limits and no budget (the CLI).</param>
public sealed class FeatureShardWorker(JobStore jobs, BlobServiceClient service, FeatureStore store, int parallelism, ImageDecoder? decoder = null) : IDisposable
{
    private readonly ImageDecoder decoder = decoder ?? new ImageDecoder();

    /// <summary>Images per forward pass.</summary>
    public const int BatchSize = 16;

    private readonly SemaphoreSlim loading = new(1, 1);
    private (string Job, JobRecord Record, OnnxEngine Engine, ImagePreprocessor Preprocessor)? loaded;

    public async Task<ShardResult> RunAsync(ShardWork work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var (job, engine, preprocessor) = await LoadAsync(work.Job, cancellationToken).ConfigureAwait(false);
        var images = service.GetBlobContainerClient(job.ImagesContainer);
        var inputs = new float[work.Items.Count][];
        var outcome = new ItemOutcome[work.Items.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, work.Items.Count), new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken }, async (i, token) =>
        {
            var item = work.Items[i];
            if (item.Version is null)
            {
                outcome[i] = ItemOutcome.Changed;
                return;
            }
            ReadOnlyMemory<byte> bytes;
            try
            {
                // The listed version's size first (If-Match): over the byte limit it is rejected without a download.
                var blob = images.GetBlobClient(item.Name);
                var properties = (await blob.GetPropertiesAsync(new BlobRequestConditions { IfMatch = new ETag($"\"{item.Version}\"") }, token).ConfigureAwait(false)).Value;
                bytes = await ImageBlobs.ReadAsync(blob, properties.ETag, properties.ContentLength, this.decoder, token).ConfigureAwait(false);
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                outcome[i] = ItemOutcome.Changed; // deleted or overwritten since the listing: the trainer sees the new state
                return;
            }
            catch (ImageRejectedException)
            {
                outcome[i] = ItemOutcome.Rejected;
                return;
            }
            try
            {
                inputs[i] = await preprocessor.DecodeAndPreprocessAsync(this.decoder, bytes, token).ConfigureAwait(false);
                outcome[i] = ItemOutcome.Extracted;
            }
            catch (ImageRejectedException)
            {
                outcome[i] = ItemOutcome.Rejected;
            }
        }).ConfigureAwait(false);

        var extracted = Enumerable.Range(0, work.Items.Count).Where(i => outcome[i] == ItemOutcome.Extracted).ToList();
        var width = engine.NumFeatures;
        var features = new float[extracted.Count * width];
        var length = preprocessor.InputLength;
        for (var start = 0; start < extracted.Count; start += BatchSize)
        {
            var count = Math.Min(BatchSize, extracted.Count - start);
            var batch = new float[count * length];
            for (var k = 0; k < count; k++)
            {
                inputs[extracted[start + k]].CopyTo(batch, k * length);
                inputs[extracted[start + k]] = [];
            }
            engine.ExtractFeatures(batch, count).CopyTo(features, start * width);
        }
        if (extracted.Count > 0)
        {
            var stored = extracted.Select(i => new FeatureImage($"{job.ImagesContainer}/{work.Items[i].Name}", work.Items[i].Version!)).ToList();
            await store.WriteAsync(job.FeatureKey!, $"job-{job.Id}-{JobStore.ShardName(work.Shard)}", stored, features, width, cancellationToken).ConfigureAwait(false);
        }
        return new ShardResult
        {
            Extracted = extracted.Count,
            Rejected = outcome.Count(o => o == ItemOutcome.Rejected),
            Changed = outcome.Count(o => o == ItemOutcome.Changed),
        };
    }

    private async Task<(JobRecord Job, OnnxEngine Engine, ImagePreprocessor Preprocessor)> LoadAsync(string jobId, CancellationToken cancellationToken)
    {
        await loading.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (loaded is { } current && current.Job == jobId)
            {
                return (current.Record, current.Engine, current.Preprocessor);
            }
            var job = await jobs.GetAsync(jobId, cancellationToken).ConfigureAwait(false)
                ?? throw new ShardFailedException($"job {jobId} has no job.json (was it deleted?)");
            if (job.Kind != JobKinds.Features || !FeatureStore.IsValidKey(job.FeatureKey))
            {
                throw new ShardFailedException($"job {jobId} is not a features job with a feature key");
            }
            var extractor = await FeatureExtractor.DownloadAsync(jobs.Container, jobId, cancellationToken).ConfigureAwait(false);
            var engine = new OnnxEngine(extractor.Graph, new OnnxEngineOptions());
            // The previous job's engine is dropped, not disposed: a shard of it may still be running on this instance
            // (the host runs several messages at once); its session is released when the last one lets go of it.
            loaded = (jobId, job, engine, new ImagePreprocessor(extractor.Preprocessing, extractor.MeanImage));
            return (job, engine, loaded.Value.Preprocessor);
        }
        finally
        {
            loading.Release();
        }
    }

    /// <summary>Releases the loaded extractor (the app is stopping: no shard runs).</summary>
    public void Dispose()
    {
        loaded?.Engine.Dispose();
        loaded = null;
        loading.Dispose();
    }

    private enum ItemOutcome
    {
        Changed,
        Extracted,
        Rejected,
    }
}
