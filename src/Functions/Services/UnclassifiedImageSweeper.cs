using Azure;
using Azure.Storage.Blobs.Models;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Services;

/// <summary>What one sweep did.</summary>
public sealed record SweepReport(int Found, int Classified, int Rejected, int AlreadyDone, int Failed, bool LimitReached);

/// <summary>
/// Finds images without a prediction (the blob trigger missed them: no model was live yet, an Event Grid
/// event was lost, the instance died mid-way) and classifies them through <see cref="UploadedImageHandler"/>
/// with source <c>sweep</c>. When every image has its prediction, a sweep costs one HEAD request and one
/// listing of each container, nothing else. At most <see cref="ClassifierOptions.SweepMaxImagesPerRun"/>
/// images per run; images younger than <see cref="ClassifierOptions.SweepMinImageAge"/> are left to the trigger.
/// </summary>
public sealed class UnclassifiedImageSweeper(
    ClassifierContainers containers,
    ModelProvider models,
    UploadedImageHandler handler,
    IOptions<ClassifierOptions> options,
    ILogger<UnclassifiedImageSweeper> logger,
    TimeProvider? time = null)
{
    /// <summary>Images classified at once, so that micro-batching can group them.</summary>
    public const int Parallelism = 4;

    private static readonly SweepReport Nothing = new(0, 0, 0, 0, 0, false);

    public async Task<SweepReport> SweepAsync(CancellationToken cancellationToken)
    {
        if (await models.RefreshAsync(cancellationToken).ConfigureAwait(false) is null)
        {
            logger.SweepSkipped();
            return Nothing;
        }
        var settings = options.Value;
        var done = await ListPredictedImagesAsync(cancellationToken).ConfigureAwait(false);
        var youngest = (time ?? TimeProvider.System).GetUtcNow() - settings.SweepMinImageAge;
        var pending = new List<string>();
        var limitReached = false;
        try
        {
            await foreach (var blob in containers.Images.GetBlobsAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                if (done.Contains(blob.Name) || blob.Properties.LastModified > youngest)
                {
                    continue;
                }
                if (pending.Count == settings.SweepMaxImagesPerRun)
                {
                    limitReached = true;
                    break;
                }
                pending.Add(blob.Name);
            }
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            return Nothing;
        }
        if (pending.Count == 0)
        {
            return Nothing;
        }

        var outcomes = new int[Enum.GetValues<UploadOutcome>().Length];
        var failed = 0;
        await Parallel.ForEachAsync(pending, new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken }, async (name, token) =>
        {
            try
            {
                var outcome = await handler.HandleAsync(containers.Images.GetBlobClient(name), name, PredictionSource.Sweep, token).ConfigureAwait(false);
                Interlocked.Increment(ref outcomes[(int)outcome]);
            }
            catch (RequestFailedException)
            {
                // Logged by the handler; the next sweep tries this image again.
                Interlocked.Increment(ref failed);
            }
        }).ConfigureAwait(false);
        var report = new SweepReport(pending.Count, outcomes[(int)UploadOutcome.Classified], outcomes[(int)UploadOutcome.Rejected],
            outcomes[(int)UploadOutcome.AlreadyDone], failed, limitReached);
        logger.SweepDone(report.Found, limitReached, report.Classified, report.Rejected, report.AlreadyDone, report.Failed);
        return report;
    }

    /// <summary>Names of the images that have a prediction (listing the predictions container, names only).</summary>
    private async Task<HashSet<string>> ListPredictedImagesAsync(CancellationToken cancellationToken)
    {
        var names = new HashSet<string>(StringComparer.Ordinal);
        try
        {
            await foreach (var blob in containers.Predictions.GetBlobsAsync(cancellationToken: cancellationToken).ConfigureAwait(false))
            {
                if (blob.Name.EndsWith(PredictionDocument.BlobSuffix, StringComparison.Ordinal))
                {
                    names.Add(blob.Name[..^PredictionDocument.BlobSuffix.Length]);
                }
            }
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            // No predictions yet: every image is pending.
        }
        return names;
    }
}
