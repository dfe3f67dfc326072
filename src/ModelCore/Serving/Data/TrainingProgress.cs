namespace ServerlessClassifier.ModelCore.Data;

/// <summary>Where a run is.</summary>
public enum TrainingPhase
{
    /// <summary>Reading and checking images (Current/Total: images).</summary>
    Loading,

    /// <summary>Head mode (and the probe start and refit of a fine-tune): running the frozen backbone once over every image (Current/Total: images).</summary>
    Features,

    /// <summary>Training batches of one epoch (Current/Total: batches; <see cref="TrainingProgress.Epoch"/> is 1-based).</summary>
    Epoch,

    /// <summary>An epoch finished (<see cref="TrainingProgress.Metrics"/> set; Current/Total: epochs).</summary>
    EpochCompleted,

    /// <summary>Making the int8 graph: calibrating on training images, then checking it against fp32 on the validation images (Current/Total: images).</summary>
    Quantization,

    /// <summary>Anything else worth a line in a log (Message set).</summary>
    Info,

    /// <summary>A fine-tune: running the frozen stages once over every view of every image, into the cache the epochs read (Current/Total: images).</summary>
    FrozenPrefix,
}

/// <summary>
/// A progress report: enough for a CLI to draw bars with an ETA (Current of Total in the phase) and
/// to print each epoch's metrics.
/// </summary>
public sealed record TrainingProgress(TrainingPhase Phase, int Current, int Total, string? Message = null)
{
    /// <summary>1-based epoch for <see cref="TrainingPhase.Epoch"/> and <see cref="TrainingPhase.EpochCompleted"/>; 0 otherwise.</summary>
    public int Epoch { get; init; }

    /// <summary>Set on <see cref="TrainingPhase.EpochCompleted"/>.</summary>
    public EpochMetrics? Metrics { get; init; }
}

/// <summary>One epoch's results. Epochs are 1-based.</summary>
public sealed record EpochMetrics(int Epoch, double TrainLoss, double TrainAccuracy, double ValidationLoss, double ValidationAccuracy, double LearningRate, double Seconds)
{
    /// <summary>Training images per second of the epoch's training steps (validation not counted); 0 where not measured.</summary>
    public double ImagesPerSecond { get; init; }

    /// <summary>
    /// The validation loss after a temperature fitted on the validation logits (<c>epoch selection</c> calibrated-loss compares
    /// epochs on it: a head trained for a few epochs is over-confident, a probe start is calibrated); null where not computed.
    /// </summary>
    public double? CalibratedValidationLoss { get; init; }

    /// <summary>
    /// The mean of the start's per-image validation losses minus this epoch's (on the epoch selection's criterion): positive
    /// when the epoch is better; null where there is no start to compare.
    /// </summary>
    public double? LossBelowStart { get; init; }

    /// <summary>The standard error of <see cref="LossBelowStart"/> (the paired per-image difference).</summary>
    public double? LossBelowStartStandardError { get; init; }

    /// <summary>Whether <see cref="LossBelowStart"/> exceeds 2 standard errors: only such an epoch may replace the start.</summary>
    public bool? ClearlyBelowStart { get; init; }
}
