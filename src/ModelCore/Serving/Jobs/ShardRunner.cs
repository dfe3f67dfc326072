using System.Diagnostics;
using Azure;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Jobs;

/// <summary>What became of one delivery of a shard message.</summary>
public enum ShardOutcome
{
    /// <summary>Every item was brought up to date and the shard's result written (by this delivery or, racing it, a duplicate).</summary>
    Done,

    /// <summary>The shard had a result already (a duplicate or late delivery): nothing was read.</summary>
    AlreadyDone,

    /// <summary>The shard failed on its last allowed delivery (or can never succeed) and was parked with its reason.</summary>
    Parked,
}

/// <summary>
/// A shard failed on a delivery that is not its last: thrown so the queue delivers it again (the items that were
/// done stay done: a retry finds their predictions current and writes nothing).
/// </summary>
public sealed class ShardFailedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Runs one shard of a fanned-out classification: every item goes through <c>update</c> (the Functions app passes
/// the blob trigger's handler, so the rule is <see cref="PredictionUpdater"/>'s: conditional writes, the image
/// version recorded, rejected images answered, deleted images' predictions removed). Safe to run twice at once or
/// again after a crash: a shard with a result is skipped; items done by an earlier attempt are found current.
/// A failure (storage, no model live) is thrown for the queue to retry until delivery <see cref="MaxAttempts"/>,
/// which parks the shard with the reason instead (and returns normally, so the message is not also poisoned).
/// </summary>
public sealed class ShardRunner(JobStore jobs, int maxAttempts, int parallelism)
{
    public int MaxAttempts { get; } = maxAttempts >= 1 ? maxAttempts : throw new ArgumentOutOfRangeException(nameof(maxAttempts));

    public int Parallelism { get; } = parallelism >= 1 ? parallelism : throw new ArgumentOutOfRangeException(nameof(parallelism));

    /// <summary>Runs a classify shard: every item through <paramref name="update"/> (in parallel, <see cref="Parallelism"/> at a time).</summary>
    public Task<ShardOutcome> RunAsync(
        ShardMessage message, long deliveryCount, Func<ShardItem, CancellationToken, Task<PredictionOutcome>> update, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(update);
        return RunAsync(message, deliveryCount, (work, token) => ClassifyAsync(work, update, token), cancellationToken);
    }

    /// <summary>
    /// Runs a shard with <paramref name="run"/>, which does the whole shard's work and returns its result, or throws
    /// <see cref="ShardFailedException"/> (or any failure) for the queue to deliver it again; the last allowed delivery
    /// parks the shard with the reason. A shard with a result is not run again.
    /// </summary>
    public async Task<ShardOutcome> RunAsync(ShardMessage message, long deliveryCount, Func<ShardWork, CancellationToken, Task<ShardResult>> run, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(run);
        if (await jobs.IsDoneAsync(message, cancellationToken).ConfigureAwait(false))
        {
            return ShardOutcome.AlreadyDone;
        }
        if (await jobs.ReadShardAsync(message, cancellationToken).ConfigureAwait(false) is not { } work)
        {
            await ParkAsync(message, deliveryCount, "the shard's work file does not exist (was the job deleted?)", cancellationToken).ConfigureAwait(false);
            return ShardOutcome.Parked;
        }
        var watch = Stopwatch.StartNew();
        ShardResult result;
        try
        {
            result = await run(work, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            var failure = e is ShardFailedException ? e.Message : Describe(e);
            if (deliveryCount >= MaxAttempts)
            {
                await ParkAsync(message, deliveryCount, failure, cancellationToken).ConfigureAwait(false);
                return ShardOutcome.Parked;
            }
            throw new ShardFailedException($"Shard {message.Shard} of job {message.Job} failed on delivery {deliveryCount} of {MaxAttempts}: {failure}", e);
        }
        await jobs.TryWriteResultAsync(message, result with { Attempt = deliveryCount, Seconds = watch.Elapsed.TotalSeconds }, cancellationToken).ConfigureAwait(false);
        return ShardOutcome.Done;
    }

    /// <summary>A classify shard's work: every item through <paramref name="update"/>; the first failure is thrown once all items ran.</summary>
    public async Task<ShardResult> ClassifyAsync(ShardWork work, Func<ShardItem, CancellationToken, Task<PredictionOutcome>> update, CancellationToken cancellationToken)
    {
        var counts = new int[Enum.GetValues<PredictionOutcome>().Length];
        string? failure = null;
        Exception? firstError = null;
        await Parallel.ForEachAsync(work.Items, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken }, async (item, token) =>
        {
            try
            {
                var outcome = await update(item, token).ConfigureAwait(false);
                Interlocked.Increment(ref counts[(int)outcome]);
                if (outcome == PredictionOutcome.NoModel)
                {
                    Interlocked.CompareExchange(ref failure, "no model is live (publish one with trainjob publish)", null);
                }
            }
            catch (Exception e) when (!token.IsCancellationRequested)
            {
                Interlocked.CompareExchange(ref failure, $"{item.Name}: {Describe(e)}", null);
                Interlocked.CompareExchange(ref firstError, e, null);
            }
        }).ConfigureAwait(false);
        if (failure is not null)
        {
            throw new ShardFailedException(failure, firstError);
        }
        int Count(PredictionOutcome outcome) => counts[(int)outcome];
        return new ShardResult
        {
            Classified = Count(PredictionOutcome.Classified),
            Rejected = Count(PredictionOutcome.Rejected),
            Current = Count(PredictionOutcome.AlreadyDone),
            Removed = Count(PredictionOutcome.Removed),
            Changed = Count(PredictionOutcome.ImageGone) + Count(PredictionOutcome.Superseded),
        };
    }

    private Task ParkAsync(ShardMessage message, long deliveryCount, string reason, CancellationToken cancellationToken) =>
        jobs.ParkAsync(message, new ParkedShard(message.Shard, deliveryCount, reason, DateTimeOffset.UtcNow), cancellationToken);

    /// <summary>A reason fit to store and print: a storage failure by its status and code only (its message carries URIs and headers).</summary>
    public static string Describe(Exception e) => e switch
    {
        RequestFailedException storage => $"storage request failed ({storage.Status} {storage.ErrorCode})",
        _ => $"{e.GetType().Name}: {e.Message}",
    };
}
