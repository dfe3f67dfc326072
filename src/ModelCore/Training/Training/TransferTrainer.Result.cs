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
        var predictions = new List<ValidationPrediction>();
        for (var i = 0; i < data.ValidationLabels.Length; i++)
        {
            var row = probabilities.AsSpan(i * classes, classes).ToArray();
            var top = Array.IndexOf(row, row.Max());
            predictions.Add(new ValidationPrediction(data.ValidationSources[i], dataset.Labels[data.ValidationLabels[i]], dataset.Labels[top], row[top], row));
        }
        var report = Evaluation.Compute(dataset.Labels, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        var counts = (int[] labels) => dataset.Labels.Select((l, c) => (l, c)).ToDictionary(x => x.l, x => labels.Count(y => y == x.c), StringComparer.Ordinal);
        var manifest = new ModelManifest
        {
            Backbone = setup.BackboneId,
            BackboneSource = setup.BackboneSource,
            Head = setup.Model.HeadSpec,
            Labels = dataset.Labels,
            Preprocessing = setup.Preprocessing,
            ConfidenceThreshold = threshold,
            Training = new TrainingSummary
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
                TrainCounts = counts(data.TrainLabels),
                ValidationCounts = counts(data.ValidationLabels),
                ClassImbalanceRatio = dataset.Balance.MaxMinRatio,
                SkippedImages = skipped.Count,
                Skipped = [.. skipped.Take(TrainingSummary.MaxSkippedListed).Select(s => new SkippedImageEntry(s.Source, s.Code.ToString(), s.Message))],
                DataHash = dataset.DataHash,
            },
            Metrics = new ValidationMetrics
            {
                Accuracy = accuracy,
                Loss = loss,
                Samples = data.ValidationLabels.Length,
                MacroF1 = report.MacroF1,
            },
        };
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
            VerificationInputs = data is ImageBatches images ? [.. images.ValidationInputs.Take(TrainingData.VerificationImages)] : [],
            Device = device.type == DeviceType.CUDA ? "cuda" : "cpu",
        };
    }

}
