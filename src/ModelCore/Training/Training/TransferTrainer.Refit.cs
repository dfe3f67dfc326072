using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Training.Prefix;
using ServerlessClassifier.ModelCore.Training.Probe;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>Finetune's last step: the head fitted again as a linear probe on the kept backbone (<see cref="TrainingOptions.RefitHead"/>).</summary>
public sealed partial class TransferTrainer
{
    /// <summary>True when a finetune ends by refitting its linear head on every image.</summary>
    public static bool UsesHeadRefit(TrainingOptions options) =>
        options.Mode == TrainingMode.Finetune && options.RefitHead && options.HeadKind == HeadKind.Linear && options.PrefixViews > 0;

    private static TrainingResult RefitHead(ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, PrefixBatches data, TrainingResult trained, IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var model = setup.Model;
        var classes = dataset.Labels.Count;
        var d = model.Backbone.NumFeatures;
        var (trainCount, validationCount) = (data.TrainLabels.Length, data.ValidationLabels.Length);
        var features = new float[(trainCount + validationCount) * d];
        model.eval();
        using (inference_mode())
        {
            for (var start = 0; start < trainCount + validationCount; start += EvaluationBatchSize)
            {
                using var scope = NewDisposeScope();
                var n = Math.Min(EvaluationBatchSize, trainCount + validationCount - start);
                // The served view of each image: training images first, then validation images.
                var inputs = start + n <= trainCount ? data.PlainTrainBatch(start, n)
                    : start >= trainCount ? data.ValidationBatch(start - trainCount, n)
                    : cat([data.PlainTrainBatch(start, trainCount - start), data.ValidationBatch(0, start + n - trainCount)], 0);
                model.Backbone.call(inputs).data<float>().CopyTo(features.AsSpan(start * d, n * d));
            }
        }
        int[] labels = [.. data.TrainLabels, .. data.ValidationLabels];
        string[] sources = [.. data.TrainSources, .. data.ValidationSources];
        // Only images the kept backbone never trained on judge the fit: the validation split, or every image when the start (epoch 0) was kept.
        int[]? scored = trained.BestEpoch == 0 ? null : [.. Enumerable.Range(trainCount, validationCount)];
        var fit = LinearProbe.Fit(features, labels, classes, null, options.ProbeFolds, options.Seed, scored: scored, report: message => Report(progress, message), cancellationToken: cancellationToken);
        SetHead(setup, fit);

        var judged = scored ?? [.. Enumerable.Range(0, labels.Length)];
        var predictions = Predictions(dataset, [.. judged.Select(i => sources[i])], [.. judged.Select(i => labels[i])],
            i => [.. fit.OutOfFoldProbabilities.AsSpan(judged[i] * classes, classes).ToArray().Select(p => (float)p)]);
        var report = Evaluation.Compute(dataset.Labels, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        var summary = new ProbeSummary
        {
            Folds = fit.Folds,
            Lambda = fit.Lambda,
            Grid = fit.Grid,
            Temperature = fit.Temperature,
            EceBefore = fit.EceBefore,
            EceAfter = fit.EceAfter,
            NllBefore = fit.NllBefore,
            NllAfter = fit.NllAfter,
            ClassWeighted = fit.ClassWeighted,
            FlipFeatures = false,
            Images = labels.Length,
            Rows = fit.FinalRows,
            Iterations = fit.FinalOutcome.Iterations,
            Converged = fit.FinalOutcome.Converged,
            Seconds = fit.Seconds,
        };
        Report(progress, string.Create(CultureInfo.InvariantCulture,
            $"Head refitted as a linear probe on the kept backbone (epoch {trained.BestEpoch}) over all {labels.Length} images: L2 {fit.Lambda:G3}, temperature {fit.Temperature:F3}, " +
            $"both chosen on the out-of-fold predictions of {(scored is null ? "every image (the backbone is the pretrained one)" : $"the {validationCount} validation images (the backbone never trained on them)")}; " +
            $"their accuracy {report.Accuracy:P1} (the fine-tuned head's: {trained.Validation.Accuracy:P1}); {watch.Elapsed.TotalSeconds:F1} s."));
        var manifest = trained.Manifest with
        {
            ConfidenceThreshold = threshold,
            Training = trained.Manifest.Training! with { Probe = summary, ValidationCounts = Counts(dataset, [.. judged.Select(i => labels[i])]) },
            Metrics = new ValidationMetrics
            {
                Accuracy = report.Accuracy,
                Loss = fit.NllAfter,
                Samples = judged.Length,
                MacroF1 = report.MacroF1,
                ExpectedCalibrationError = fit.EceAfter,
            },
        };
        return new TrainingResult(model, manifest)
        {
            History = trained.History,
            BestEpoch = trained.BestEpoch,
            StoppedEarly = trained.StoppedEarly,
            ResumedFromEpoch = trained.ResumedFromEpoch,
            ValidationPredictions = predictions,
            Validation = report,
            ConfidenceThreshold = threshold,
            SkippedImages = trained.SkippedImages,
            MeanImage = trained.MeanImage,
            VerificationInputs = trained.VerificationInputs,
            Device = trained.Device,
        };
    }
}
