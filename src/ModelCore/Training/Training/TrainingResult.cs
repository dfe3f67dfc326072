using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Models;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The best epoch's model's answer on one validation image.</summary>
public sealed record ValidationPrediction(string Source, string Actual, string Predicted, double Confidence, IReadOnlyList<float> Probabilities)
{
    public bool Correct => string.Equals(Actual, Predicted, StringComparison.Ordinal);
}

/// <summary>
/// What a run produced. Owns <see cref="Model"/> (dispose the result, or take the model and dispose it yourself).
/// To publish: <c>ModelCheckpoint.SaveForServing(result.Model, result.Manifest, folder, result.VerificationInputs, result.MeanImage, result.OutOfDistribution)</c>.
/// </summary>
public sealed class TrainingResult : IDisposable
{
    internal TrainingResult(ImageClassifier model, ModelManifest manifest)
    {
        Model = model;
        Manifest = manifest;
    }

    /// <summary>The classifier with the best epoch's weights, on the CPU, in eval mode.</summary>
    public ImageClassifier Model { get; }

    /// <summary>
    /// The manifest draft: backbone, head, labels, preprocessing, confidence threshold, training summary and
    /// validation metrics. Its file list is empty until <see cref="ModelCheckpoint.SaveForServing"/> writes the files.
    /// </summary>
    public ModelManifest Manifest { get; internal set; }

    /// <summary>
    /// The training features' statistics behind the out-of-distribution score (the manifest's
    /// <c>outOfDistribution</c> section describes them); saved as their own file by <see cref="ModelCheckpoint.SaveForServing"/>.
    /// </summary>
    public Ood.FeatureStatistics? OutOfDistribution { get; internal set; }

    /// <summary>Every completed epoch, including those before a resume.</summary>
    public required IReadOnlyList<EpochMetrics> History { get; init; }

    /// <summary>1-based epoch whose weights <see cref="Model"/> holds (lowest validation loss).</summary>
    public required int BestEpoch { get; init; }

    /// <summary>True when early stopping ended the run before <see cref="TrainingOptions.Epochs"/>.</summary>
    public required bool StoppedEarly { get; init; }

    /// <summary>Epochs that were already complete in the checkpoint this run resumed from (0 for a fresh run).</summary>
    public required int ResumedFromEpoch { get; init; }

    /// <summary>The best model's predictions on every validation image (for a confusion matrix).</summary>
    public required IReadOnlyList<ValidationPrediction> ValidationPredictions { get; init; }

    /// <summary>Metrics of <see cref="ValidationPredictions"/>.</summary>
    public required EvaluationReport Validation { get; init; }

    /// <summary>Default confidence threshold (see <see cref="Evaluation.ChooseConfidenceThreshold"/>); also in the manifest.</summary>
    public required double ConfidenceThreshold { get; init; }

    /// <summary>Images left out: refused by the dataset's checks or failing to decode while training.</summary>
    public required IReadOnlyList<SkippedImage> SkippedImages { get; init; }

    /// <summary>The mean image the preprocessing names (the default backbone's), or null.</summary>
    public required float[]? MeanImage { get; init; }

    /// <summary>A few preprocessed validation images, to verify the ONNX export against the model with.</summary>
    public required IReadOnlyList<float[]> VerificationInputs { get; init; }

    /// <summary>The device that trained: <c>cpu</c> or <c>cuda</c>.</summary>
    public required string Device { get; init; }

    /// <summary>Head mode: largest relative difference between ONNX Runtime and TorchSharp backbone features on the checked images.</summary>
    public double? FeatureParityRelativeDifference { get; init; }

    /// <summary>Head mode: seconds spent decoding, preprocessing and extracting features of all images.</summary>
    public double? FeatureSeconds { get; init; }

    public void Dispose() => Model.Dispose();
}

/// <summary>A run that cannot go on: a checkpoint made with other settings or data, or the serving engine disagreeing with TorchSharp.</summary>
public sealed class TrainingException : Exception
{
    public TrainingException(string message) : base(message)
    {
    }

    public TrainingException(string message, Exception inner) : base(message, inner)
    {
    }
}
