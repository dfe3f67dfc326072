using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Reports;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>The CLI's training seam wired to the engine: <see cref="TransferTrainer"/> in ModelCore.</summary>
internal sealed class EngineTrainingRunner : ITrainingRunner
{
    public async Task<TrainingRunResult> TrainAsync(TrainingRunRequest request, IProgress<TrainingRunProgress> progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        TorchRuntime.EnsureInitialized();
        var defaults = new TrainingOptions();
        var options = defaults with
        {
            Mode = request.Mode,
            UnfreezeStages = request.UnfreezeStages.Count > 0 ? request.UnfreezeStages.Count : defaults.UnfreezeStages,
            Epochs = request.Epochs,
            BatchSize = request.BatchSize,
            LearningRate = request.LearningRate ?? defaults.LearningRate,
            Seed = request.Seed,
            ValSplit = request.ValidationSplit,
            Device = request.Device,
            Backbone = request.Backbone.WeightsFile ?? request.Backbone.Id ?? defaults.Backbone,
        };
        options.Validate();
        var epochs = options.Epochs;
        var forward = new Progress<TrainingProgress>(p => progress.Report(p.Phase switch
        {
            // Per-image "checking ..." messages would print a line per file: the bar says enough.
            TrainingPhase.Loading => new TrainingRunProgress("loading", 0, epochs, p.Current, p.Total),
            TrainingPhase.Features => new TrainingRunProgress("features", 0, epochs, p.Current, p.Total),
            TrainingPhase.Epoch => new TrainingRunProgress("train", p.Epoch, epochs, p.Current, p.Total),
            TrainingPhase.EpochCompleted => new TrainingRunProgress("train", p.Epoch, epochs, p.Total, p.Total)
            {
                EpochDone = p.Metrics,
            },
            _ => new TrainingRunProgress("info", p.Epoch, epochs, p.Current, p.Total) { Message = p.Message },
        }));

        var dataset = await ImageFolderDataset.FromDirectoryAsync(request.DataFolder, options.ToDatasetOptions(), forward, cancellationToken);
        var result = await new TransferTrainer().TrainAsync(dataset, options, forward, request.CheckpointDirectory, request.Resume, cancellationToken);
        var notes = new List<string>(dataset.Warnings);
        if (result.ResumedFromEpoch > 0)
        {
            notes.Add($"Resumed after epoch {result.ResumedFromEpoch}.");
        }
        if (result.StoppedEarly)
        {
            notes.Add($"Stopped early; the best epoch ({result.BestEpoch}) was kept.");
        }
        if (result.FeatureParityRelativeDifference is { } parity)
        {
            notes.Add($"Frozen features from the serving engine matched TorchSharp within {parity:E1} (relative).");
        }
        return new TrainingRunResult
        {
            Model = result.Model,
            Manifest = result.Manifest,
            MeanImage = result.MeanImage,
            History = result.History,
            ValidationPredictions = result.ValidationPredictions,
            ConfidenceThreshold = result.ConfidenceThreshold,
            Data = new DataCounts(dataset.TrainCounts, dataset.ValidationCounts),
            Skipped = result.SkippedImages,
            BestEpoch = result.BestEpoch,
            Notes = notes,
        };
    }
}
