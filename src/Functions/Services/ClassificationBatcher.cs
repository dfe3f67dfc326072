using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// Micro-batching: images prepared (decoded, preprocessed) on their callers' threads are queued on a
/// channel; one consumer takes the first, waits at most <see cref="MicroBatchingOptions.MaxWaitMilliseconds"/>
/// for more (up to <see cref="MicroBatchingOptions.MaxBatchSize"/>), and runs them through ONE
/// <see cref="ClassificationPipeline.ClassifyPrepared"/> call, i.e. one forward pass. Each caller gets its own
/// result or the batch's exception. A batch never mixes model versions: an image for another version than
/// the batch's first closes the batch and starts the next one. Every queued image holds a reference on its
/// model, so a hot swap never disposes a pipeline a batch is about to use.
/// </summary>
public sealed class ClassificationBatcher : IAsyncDisposable
{
    public const string MeterName = "ServerlessClassifier.Functions";

    private static readonly Meter Meter = new(MeterName);
    private static readonly Histogram<int> BatchSizes = Meter.CreateHistogram<int>("classifier.batch.size", "{image}", "Images per forward pass.");

    private readonly Channel<WorkItem> queue = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = true });
    private readonly MicroBatchingOptions options;
    private readonly ILogger<ClassificationBatcher> logger;
    private readonly Task consumer;
    private long batches;
    private long images;
    private int largestBatch;

    public ClassificationBatcher(IOptions<MicroBatchingOptions> options, ILogger<ClassificationBatcher> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.options = options.Value;
        this.logger = logger;
        consumer = this.options.Enabled ? Task.Run(ConsumeAsync) : Task.CompletedTask;
    }

    public bool Enabled => options.Enabled;

    /// <summary>Forward passes run (one <see cref="ClassificationPipeline.ClassifyPrepared"/> call each).</summary>
    public long Batches => Interlocked.Read(ref batches);

    /// <summary>Images classified through those passes.</summary>
    public long Images => Interlocked.Read(ref images);

    public int LargestBatch => Volatile.Read(ref largestBatch);

    /// <summary>
    /// Classifies a prepared image with the model the caller holds. The result's ranking is the whole label
    /// list; callers cut it to their top-k and threshold (<see cref="ClassificationService"/>).
    /// </summary>
    public Task<Classification> ClassifyAsync(LoadedModel model, PreparedImage image, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(image);
        if (!options.Enabled)
        {
            Count(1);
            return Task.FromResult(model.Pipeline.ClassifyPrepared([image], int.MaxValue, threshold: null)[0]);
        }
        // The queue's own reference: released when the batch is done, so the caller may stop waiting
        // (cancellation) without the pipeline being disposed under the batch.
        model.AddReference();
        var item = new WorkItem(model, image, new TaskCompletionSource<Classification>(TaskCreationOptions.RunContinuationsAsynchronously), cancellationToken);
        if (!queue.Writer.TryWrite(item))
        {
            model.Release();
            throw new ObjectDisposedException(nameof(ClassificationBatcher));
        }
        return item.Completion.Task.WaitAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        queue.Writer.TryComplete();
        await consumer.ConfigureAwait(false);
    }

    private async Task ConsumeAsync()
    {
        var reader = queue.Reader;
        var batch = new List<WorkItem>(options.MaxBatchSize);
        WorkItem? carried = null;
        while (carried is not null || await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            if (carried is not null)
            {
                batch.Add(carried);
                carried = null;
            }
            else if (reader.TryRead(out var first))
            {
                batch.Add(first);
            }
            else
            {
                continue;
            }
            carried = await FillAsync(reader, batch).ConfigureAwait(false);
            Run(batch);
            batch.Clear();
        }
    }

    /// <summary>Adds queued items of the same model until the batch is full or the wait is over; returns an item of another model, if one came.</summary>
    private async Task<WorkItem?> FillAsync(ChannelReader<WorkItem> reader, List<WorkItem> batch)
    {
        var model = batch[0].Model;
        var deadline = Stopwatch.GetTimestamp() + (long)(options.MaxWaitMilliseconds / 1000.0 * Stopwatch.Frequency);
        while (batch.Count < options.MaxBatchSize)
        {
            if (reader.TryRead(out var next))
            {
                if (!ReferenceEquals(next.Model, model))
                {
                    return next;
                }
                batch.Add(next);
                continue;
            }
            var remaining = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
            if (remaining <= TimeSpan.Zero)
            {
                break;
            }
            using var timeout = new CancellationTokenSource(remaining);
            try
            {
                if (!await reader.WaitToReadAsync(timeout.Token).ConfigureAwait(false))
                {
                    break;
                }
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                break;
            }
        }
        return null;
    }

    private void Run(List<WorkItem> batch)
    {
        var live = new List<WorkItem>(batch.Count);
        foreach (var item in batch)
        {
            if (item.CancellationToken.IsCancellationRequested)
            {
                item.Completion.TrySetCanceled(item.CancellationToken);
                item.Model.Release();
            }
            else
            {
                live.Add(item);
            }
        }
        if (live.Count == 0)
        {
            return;
        }
        try
        {
            var results = live[0].Model.Pipeline.ClassifyPrepared([.. live.Select(i => i.Image)], int.MaxValue, threshold: null);
            Count(live.Count);
            for (var i = 0; i < live.Count; i++)
            {
                live[i].Completion.TrySetResult(results[i]);
            }
        }
#pragma warning disable CA1031 // Whatever the engine throws belongs to every caller of the batch, not to this loop.
        catch (Exception e)
#pragma warning restore CA1031
        {
            logger.BatchFailed(e, live.Count, live[0].Model.Version);
            foreach (var item in live)
            {
                item.Completion.TrySetException(e);
            }
        }
        finally
        {
            foreach (var item in live)
            {
                item.Model.Release();
            }
        }
    }

    private void Count(int size)
    {
        Interlocked.Increment(ref batches);
        Interlocked.Add(ref images, size);
        var largest = Volatile.Read(ref largestBatch);
        while (size > largest && Interlocked.CompareExchange(ref largestBatch, size, largest) != largest)
        {
            largest = Volatile.Read(ref largestBatch);
        }
        BatchSizes.Record(size);
    }

    private sealed record WorkItem(LoadedModel Model, PreparedImage Image, TaskCompletionSource<Classification> Completion, CancellationToken CancellationToken);
}
