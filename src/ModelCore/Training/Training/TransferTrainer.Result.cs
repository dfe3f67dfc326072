using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>Turns the best epoch into a result: validation predictions and metrics, the threshold and the manifest draft.</summary>
public sealed partial class TransferTrainer
{
    private static TrainingResult BuildResult(
        ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, Device device, IBatchSource data, List<EpochMetrics> history, int bestEpoch, bool stoppedEarly,
        int resumedFrom, double loss, double accuracy, float[] probabilities, List<SkippedImage> skipped)
    {
        var classes = dataset.Labels.Count;
        var predictions = Predictions(dataset, data.ValidationSources, data.ValidationLabels, i => probabilities.AsSpan(i * classes, classes).ToArray());
        var report = Evaluation.Compute(dataset.Labels, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        var manifest = Draft(dataset, setup, threshold, skipped,
            new TrainingSummary
            {
                Mode = options.Mode.ToString().ToLowerInvariant(),
                Epochs = history.Count,
                MaxEpochs = options.Epochs,
                BestEpoch = bestEpoch,
                StoppedEarly = stoppedEarly,
                BatchSize = options.BatchSize,
                LearningRate = options.LearningRate,
                BackboneLrFactor = options.Mode == TrainingMode.Head ? null : options.BackboneLrFactor,
                UnfreezeStages = options.Mode == TrainingMode.Finetune ? options.UnfreezeStages : null,
                WeightDecay = options.WeightDecay,
                Patience = options.Patience,
                ValidationSplit = dataset.ExplicitSplit ? null : options.ValSplit,
                Seed = options.Seed,
                Device = device.type == DeviceType.CUDA ? "cuda" : "cpu",
                Optimizer = options.Optimizer.ToString().ToLowerInvariant(),
                TrainCounts = Counts(dataset, data.TrainLabels),
                ValidationCounts = Counts(dataset, data.ValidationLabels),
            },
            new ValidationMetrics
            {
                Accuracy = accuracy,
                Loss = loss,
                Samples = data.ValidationLabels.Length,
                MacroF1 = report.MacroF1,
            });
        return new TrainingResult(setup.Model, manifest)
        {
            History = history,
            BestEpoch = bestEpoch,
            StoppedEarly = stoppedEarly,
            ResumedFromEpoch = resumedFrom,
            ValidationPredictions = predictions,
            Validation = report,
            ConfidenceThreshold = threshold,
            SkippedImages = skipped,
            MeanImage = setup.MeanImage,
            VerificationInputs = data.VerificationInputs,
            Device = device.type == DeviceType.CUDA ? "cuda" : "cpu",
        };
    }

    /// <summary>Each image's answer from its row of class probabilities (image order).</summary>
    private static List<ValidationPrediction> Predictions(ImageFolderDataset dataset, IReadOnlyList<string> sources, int[] labels, Func<int, float[]> probabilities)
    {
        var predictions = new List<ValidationPrediction>(labels.Length);
        for (var i = 0; i < labels.Length; i++)
        {
            var row = probabilities(i);
            var top = Array.IndexOf(row, row.Max());
            predictions.Add(new ValidationPrediction(sources[i], dataset.Labels[labels[i]], dataset.Labels[top], row[top], row));
        }
        return predictions;
    }

    /// <summary>Images per label among <paramref name="labels"/> (class indices).</summary>
    private static Dictionary<string, int> Counts(ImageFolderDataset dataset, int[] labels) =>
        dataset.Labels.Select((l, c) => (l, c)).ToDictionary(x => x.l, x => labels.Count(y => y == x.c), StringComparer.Ordinal);

    /// <summary>The manifest draft every mode writes: the model's description, plus what the data set says about the run.</summary>
    private static ModelManifest Draft(ImageFolderDataset dataset, ModelSetup setup, double threshold, List<SkippedImage> skipped, TrainingSummary training, ValidationMetrics metrics) => new()
    {
        Backbone = setup.BackboneId,
        BackboneSource = setup.BackboneSource,
        Head = setup.Model.HeadSpec,
        Labels = dataset.Labels,
        Preprocessing = setup.Preprocessing,
        ConfidenceThreshold = threshold,
        Training = training with
        {
            ClassImbalanceRatio = dataset.Balance.MaxMinRatio,
            SkippedImages = skipped.Count,
            Skipped = [.. skipped.Take(TrainingSummary.MaxSkippedListed).Select(s => new SkippedImageEntry(s.Source, s.Code.ToString(), s.Message))],
            DataHash = dataset.DataHash,
        },
        Metrics = metrics,
    };
}
