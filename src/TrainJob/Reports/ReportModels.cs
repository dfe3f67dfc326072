using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.TrainJob.Reports;

// Not the engine's SkippedImage: the CLI also skips for reasons outside ImageErrorCode (NotFound, Unreadable), and its JSON shows one "reason".
/// <summary>An image that was left out, and why (a stable code such as <c>Corrupt</c>, or a message).</summary>
public sealed record SkippedImage(string File, string Reason);

/// <summary>How many images (per label) went into the training and validation sets.</summary>
public sealed record DataCounts(IReadOnlyDictionary<string, int> Train, IReadOnlyDictionary<string, int> Validation)
{
    public int TotalTrain => Train.Values.Sum();

    public int TotalValidation => Validation.Values.Sum();

    /// <summary>Largest class over smallest class in the training set (1 = balanced; infinite when a class is empty).</summary>
    public double ImbalanceRatio
    {
        get
        {
            if (Train.Count == 0)
            {
                return 1;
            }
            var min = Train.Values.Min();
            return min == 0 ? double.PositiveInfinity : (double)Train.Values.Max() / min;
        }
    }
}

/// <summary>
/// Everything a training report shows, as plain data (the engine's metric records, no model or
/// tensors), so the report can be produced (and tested) from any source of these numbers.
/// </summary>
public sealed record TrainingReport
{
    public required string Title { get; init; }

    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The settings as shown to people, in order (name, value).</summary>
    public required IReadOnlyList<KeyValuePair<string, string>> Settings { get; init; }

    public required IReadOnlyList<string> Labels { get; init; }

    public required DataCounts Data { get; init; }

    public required IReadOnlyList<EpochMetrics> History { get; init; }

    /// <summary>Validation results of the model that was kept (null without a validation set).</summary>
    public EvaluationReport? Validation { get; init; }

    public IReadOnlyList<SkippedImage> Skipped { get; init; } = [];

    public int? BestEpoch { get; init; }

    /// <summary>With weight averaging: how many epochs the kept model averages (it is the start moved towards their mean); null otherwise.</summary>
    public int? AveragedEpochs { get; init; }

    public double ConfidenceThreshold { get; init; }

    /// <summary>How classes got thresholds of their own (<c>f1</c> or <c>precision=P</c>); null when they share <see cref="ConfidenceThreshold"/>.</summary>
    public string? ClassThresholdGoal { get; init; }

    /// <summary>Each class's threshold decision when <see cref="ClassThresholdGoal"/> is set.</summary>
    public IReadOnlyList<ClassThresholdChoice>? ClassThresholds { get; init; }

    /// <summary>Head mode's linear probe: cross-validation, temperature, calibration error before and after (null for epoch-trained models).</summary>
    public ServerlessClassifier.ModelCore.Checkpoints.ProbeSummary? Probe { get; init; }

    /// <summary>How the probabilities were calibrated (every model trained since it was recorded; null for older ones).</summary>
    public ServerlessClassifier.ModelCore.Checkpoints.CalibrationSummary? Calibration { get; init; }

    /// <summary>
    /// The predictions the validation metrics come from (out-of-fold and temperature-scaled for the linear
    /// probe; the kept epoch's on the validation split otherwise): the reliability diagram is drawn from them.
    /// </summary>
    public IReadOnlyList<ValidationPrediction> Predictions { get; init; } = [];

    /// <summary>A multi-label model's figures (per label at its threshold, micro/macro F1, mAP, exact match); null for a multi-class model.</summary>
    public MultiLabelReport? MultiLabel { get; init; }

    /// <summary>A multi-label model's probes (L2, temperature, threshold rule per label); null for a multi-class model.</summary>
    public IReadOnlyList<ServerlessClassifier.ModelCore.Probe.LabelProbe>? LabelProbes { get; init; }

    /// <summary>The precision of the served graph.</summary>
    public ServerlessClassifier.ModelCore.Checkpoints.ModelPrecision Precision { get; init; }

    /// <summary>The int8 check (int8 vs fp32 on the validation images), when an int8 graph was made.</summary>
    public ServerlessClassifier.ModelCore.Checkpoints.QuantizationSummary? Quantization { get; init; }

    /// <summary>The graph CPUs without 8-bit dot products serve instead of an 8-bit int8 graph, with the 7-bit graph's check (the manifest's <c>portableGraph</c>); absent otherwise.</summary>
    public ServerlessClassifier.ModelCore.Checkpoints.PortableGraphSpec? PortableGraph { get; init; }

    /// <summary>Wall-clock seconds of each stage of the run, in order (the engine's <c>TrainingResult.Steps</c>); empty where not timed.</summary>
    public IReadOnlyList<ServerlessClassifier.ModelCore.Results.StepTime> Steps { get; init; } = [];

    /// <summary>Notes for people, for information (e.g. "stopped early at epoch 7").</summary>
    public IReadOnlyList<string> Notes { get; init; } = [];

    /// <summary>Warnings for people: something about the data or the model needs a look (shown apart from <see cref="Notes"/>).</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>The validation images the model got wrong, most confident first (at most <see cref="ErrorGallery.MaxImages"/>).</summary>
    public IReadOnlyList<GalleryImage> Errors { get; init; } = [];
}

/// <summary>
/// One wrong prediction of the error gallery: the image, its true and predicted labels and the confidence (of the
/// predictions the validation metrics come from), and a thumbnail of the model's view with the served model's activation
/// map of the predicted label over it (without one for models that have no map).
/// </summary>
public sealed record GalleryImage(string Source, string Actual, string Predicted, double Confidence, string ThumbnailJpegBase64, bool HasMap);
