using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.ModelCore.Results;

/// <summary>The served model's answer on one judged image (validation split, or out-of-fold), with calibrated probabilities.</summary>
public sealed record ValidationPrediction(string Source, string Actual, string Predicted, double Confidence, IReadOnlyList<float> Probabilities)
{
    public bool Correct => string.Equals(Actual, Predicted, StringComparison.Ordinal);
}

/// <summary>
/// What a run produced, made once at its end: the model package written to <see cref="Folder"/> (what <c>publish</c>
/// publishes; <see cref="Manifest"/> is its manifest as written) and what the run measured on the way. Owns
/// <see cref="Model"/>, the trained TorchSharp classifier (dispose the result).
/// </summary>
public sealed class TrainingResult : IDisposable
{
    internal TrainingResult()
    {
    }

    /// <summary>The plan that ran (resolved).</summary>
    public required TrainingPlan Plan { get; init; }

    /// <summary>The model folder: weights, the verified graph it serves, mean image, out-of-distribution statistics, manifest.</summary>
    public required string Folder { get; init; }

    /// <summary>The manifest as written, with its files, precision, export verification, calibration and out-of-distribution section.</summary>
    public required ModelManifest Manifest { get; init; }

    /// <summary>The trained classifier (CPU, eval mode): the weights of <see cref="Folder"/>.</summary>
    public required ImageClassifier Model { get; init; }

    /// <summary>Every completed epoch, including those before a resume (one entry for a probe).</summary>
    public required IReadOnlyList<EpochMetrics> History { get; init; }

    /// <summary>The epoch whose weights the model holds (0: the start; a probe: 1).</summary>
    public required int BestEpoch { get; init; }

    /// <summary>True when early stopping ended the run before its last epoch.</summary>
    public required bool StoppedEarly { get; init; }

    /// <summary>Epochs that were already complete in the checkpoint this run resumed from (0 for a fresh run).</summary>
    public required int ResumedFromEpoch { get; init; }

    /// <summary>The served model's calibrated answers on the images its figures come from (for a confusion matrix).</summary>
    public required IReadOnlyList<ValidationPrediction> ValidationPredictions { get; init; }

    /// <summary>Metrics of <see cref="ValidationPredictions"/>.</summary>
    public required EvaluationReport Validation { get; init; }

    /// <summary>A multi-label model's figures (per label at its threshold, micro/macro F1, mAP, exact match) on the out-of-fold predictions; null for a multi-class model.</summary>
    public MultiLabelReport? MultiLabel { get; init; }

    /// <summary>A multi-label model's probes, one per label (L2, calibration, threshold); null for a multi-class model.</summary>
    public IReadOnlyList<Probe.LabelProbe>? LabelProbes { get; init; }

    /// <summary>Default confidence threshold; also in the manifest.</summary>
    public required double ConfidenceThreshold { get; init; }

    /// <summary>Each class's threshold decision (<c>--class-thresholds</c>); null when every class uses <see cref="ConfidenceThreshold"/>.</summary>
    public IReadOnlyList<ClassThresholdChoice>? ClassThresholds { get; init; }

    /// <summary>Images left out: refused by the data set's checks or failing to decode while training.</summary>
    public required IReadOnlyList<SkippedImage> SkippedImages { get; init; }

    /// <summary>The device that trained: <c>cpu</c> or <c>cuda</c>.</summary>
    public required string Device { get; init; }

    /// <summary>The mean image the preprocessing subtracts (the default backbone's), or null: what an <c>ImagePreprocessor</c> of the model needs.</summary>
    public float[]? MeanImage { get; init; }

    /// <summary>The out-of-distribution statistics the manifest's section describes (also a file of the package); null for a multi-label model, which has none yet.</summary>
    public required Ood.FeatureStatistics? OutOfDistribution { get; init; }

    /// <summary>Head mode: largest relative difference between ONNX Runtime and TorchSharp backbone features on the checked images.</summary>
    public double? FeatureParityRelativeDifference { get; init; }

    /// <summary>Head mode: seconds spent decoding, preprocessing and extracting features of all images.</summary>
    public double? FeatureSeconds { get; init; }

    /// <summary>Wall-clock seconds of each stage, in order (inputs, fit, calibration, out-of-distribution, export, precision, save); empty where not timed.</summary>
    public IReadOnlyList<StepTime> Steps { get; init; } = [];

    /// <summary>Why an int8 graph that was made is not served (its check's figures); null when it is, or none was made.</summary>
    public string? Int8Refusal => Manifest.Quantization is { Accepted: false } q ? ServingGraph.RefusalMessage(q) : null;

    public void Dispose() => Model.Dispose();
}

/// <summary>One stage of a training run and its wall-clock seconds.</summary>
public sealed record StepTime(string Step, double Seconds)
{
    /// <summary>"inputs 97.6 s, fit 281.2 s": the steps in order, one decimal.</summary>
    public static string List(IEnumerable<StepTime> steps) =>
        string.Join(", ", steps.Select(s => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{s.Step} {s.Seconds:F1} s")));
}
