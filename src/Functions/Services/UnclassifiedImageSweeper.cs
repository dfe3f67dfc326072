using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// Finds images without a current prediction (the blob trigger missed them: no model was live yet, an Event Grid
/// event was lost, the instance died mid-way, or the image was uploaded again) and predictions whose image was
/// deleted, with ModelCore's <see cref="PredictionBackfill"/> (a streaming merge of the two name-ordered listings,
/// the same code TrainJob's <c>classify --container</c> runs): images go through <see cref="UploadedImageHandler"/>
/// with source <c>sweep</c>, orphaned predictions are removed. At most
/// <see cref="ClassifierOptions.SweepMaxImagesPerRun"/> items per run; images younger than
/// <see cref="ClassifierOptions.SweepMinImageAge"/> are left to the trigger. A failing image is logged and counted,
/// the run goes on, and the next sweeps pass over it for a while (<see cref="SweepRetries"/>), so images that always
/// fail cannot hold the per-run bound; images whose name leaves no room for their prediction's are never work (one
/// warning per sweep counts them).
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

    private readonly SweepRetries retries = new();

    public async Task<BackfillReport> SweepAsync(CancellationToken cancellationToken)
    {
        // Nothing to do while no model at all is published (the default, or a named one that uploads can be routed to).
        if (await models.RefreshAsync(cancellationToken).ConfigureAwait(false) is null
            && (await ModelStore.ListModelsAsync(containers.Models, cancellationToken).ConfigureAwait(false)).Count == 0)
        {
            logger.SweepSkipped();
            return BackfillReport.Nothing;
        }
        var settings = options.Value;
        retries.StartSweep();
        var report = await new PredictionBackfill(containers.Images, containers.Predictions).RunAsync(
            (name, token) => handler.HandleAsync(containers.Images.GetBlobClient(name), name, PredictionSource.Sweep, token),
            settings.SweepMaxImagesPerRun,
            Parallelism,
            modifiedBefore: (time ?? TimeProvider.System).GetUtcNow() - settings.SweepMinImageAge,
            failed: (name, error) =>
            {
                retries.Failed(name);
                logger.SweepItemFailed(error, name);
            },
            done: (name, _) => retries.Succeeded(name),
            passOver: retries.ShouldPassOver,
            cancellationToken: cancellationToken).ConfigureAwait(false);
        if (report.Found > 0 || report.PassedOver > 0)
        {
            logger.SweepDone(report.Found, report.LimitReached, report.Classified, report.Rejected, report.AlreadyDone, report.Removed, report.Failed, report.PassedOver);
        }
        if (report.FirstNameTooLong is { } first)
        {
            logger.SweepNamesTooLong(report.NamesTooLong, PredictionDocument.MaxImageNameLength, first);
        }
        return report;
    }
}
