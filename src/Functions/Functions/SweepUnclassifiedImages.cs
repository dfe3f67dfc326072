using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Services;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// On the <c>Classifier:SweepSchedule</c> schedule (default every 5 minutes), classifies the images that have no
/// prediction yet, a bounded number per run (<see cref="UnclassifiedImageSweeper"/>).
/// </summary>
public sealed class SweepUnclassifiedImages(UnclassifiedImageSweeper sweeper)
{
    [Function(nameof(SweepUnclassifiedImages))]
    public Task Run([TimerTrigger("%Classifier:SweepSchedule%", RunOnStartup = false)] TimerInfo timer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(timer);
        return sweeper.SweepAsync(cancellationToken);
    }
}
