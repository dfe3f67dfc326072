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

    /// <summary>Most images a shard holds preprocessed at once (four forward passes).</summary>
    public const int ChunkSize = 4 * BatchSize;

    private readonly SemaphoreSlim loading = new(1, 1);
    private (string Job, JobRecord Record, OnnxEngine Engine, ImagePreprocessor Preprocessor)? loaded;

    public async Task<ShardResult> RunAsync(ShardWork work, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(work);
        var (job, engine, preprocessor) = await LoadAsync(work.Job, cancellationToken).ConfigureAwait(false);
        var images = service.GetBlobContainerClient(job.ImagesContainer);
        var outcome = new ItemOutcome[work.Items.Count];
        var width = engine.NumFeatures;
        var length = preprocessor.InputLength;
        var features = new List<float>(work.Items.Count * width);
        // A chunk of images at a time: read, decoded and preprocessed in parallel, then run through the graph and let
        // go, so that a shard holds at most ChunkSize preprocessed inputs (about 0.6 MB each at 224 px) whatever its size.
        for (var chunk = 0; chunk < work.Items.Count; chunk += ChunkSize)
        {
            var indices = Enumerable.Range(chunk, Math.Min(ChunkSize, work.Items.Count - chunk)).ToList();
            var inputs = new float[work.Items.Count][];
            await Parallel.ForEachAsync(indices, new ParallelOptions { MaxDegreeOfParallelism = parallelism, CancellationToken = cancellationToken }, async (i, token) =>
                (outcome[i], inputs[i]) = await PrepareAsync(images, work.Items[i], preprocessor, token).ConfigureAwait(false)).ConfigureAwait(false);
            var ready = indices.Where(i => outcome[i] == ItemOutcome.Extracted).ToList();
            for (var start = 0; start < ready.Count; start += BatchSize)
            {
                var count = Math.Min(BatchSize, ready.Count - start);
                var batch = new float[count * length];
                for (var k = 0; k < count; k++)
                {
                    inputs[ready[start + k]].CopyTo(batch, k * length);
                }
                features.AddRange(engine.ExtractFeatures(batch, count));
            }
        }
        var extracted = Enumerable.Range(0, work.Items.Count).Where(i => outcome[i] == ItemOutcome.Extracted).ToList();
        if (extracted.Count > 0)
        {
            var stored = extracted.Select(i => new FeatureImage($"{job.ImagesContainer}/{work.Items[i].Name}", work.Items[i].Version!)).ToList();
            await store.WriteAsync(job.FeatureKey!, $"job-{job.Id}-{JobStore.ShardName(work.Shard)}", stored, features.ToArray(), width, cancellationToken).ConfigureAwait(false);
        }
        return new ShardResult
        {
            Extracted = extracted.Count,
            Rejected = outcome.Count(o => o == ItemOutcome.Rejected),
            Changed = outcome.Count(o => o == ItemOutcome.Changed),
        };
    }

    /// <summary>
    /// One image at the version the job listed: read (over the byte limit it is rejected from its properties, without a
    /// download), decoded and preprocessed; deleted or overwritten since the listing is Changed, undecodable Rejected.
    /// </summary>
    private async Task<(ItemOutcome Outcome, float[] Input)> PrepareAsync(BlobContainerClient images, ShardItem item, ImagePreprocessor preprocessor, CancellationToken cancellationToken)
    {
        if (item.Version is null)
        {
            return (ItemOutcome.Changed, []);
        }
        try
        {
            var blob = images.GetBlobClient(item.Name);
            var properties = (await blob.GetPropertiesAsync(new BlobRequestConditions { IfMatch = new ETag($"\"{item.Version}\"") }, cancellationToken).ConfigureAwait(false)).Value;
            var bytes = await ImageBlobs.ReadAsync(blob, properties.ETag, properties.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
            return (ItemOutcome.Extracted, await preprocessor.DecodeAndPreprocessAsync(decoder, bytes, cancellationToken).ConfigureAwait(false));
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return (ItemOutcome.Changed, []); // deleted or overwritten since the listing: the trainer sees the new state
        }
        catch (ImageRejectedException)
        {
            return (ItemOutcome.Rejected, []);
        }
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
