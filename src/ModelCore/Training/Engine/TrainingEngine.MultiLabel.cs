using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.OutOfDistribution;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Results;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>
/// The multi-label pipeline: the same data and inputs stages as every plan (the frozen backbone's features, parity-checked),
/// then one calibrated binary probe per label (<see cref="MultiLabelProbe"/>) with its threshold, and the fp32 graph ending in sigmoids, verified against
/// TorchSharp, and with <c>--precision int8|auto</c> the int8 graph, checked per label: each label's decision at its threshold on the
/// out-of-fold images under both precisions (<see cref="MultiLabelReference"/>), kept only when no label's accuracy drops more than
/// the multi-class check allows. Not built yet: out-of-distribution statistics (their score is the distance to the nearest class) and
/// fine-tuning with a binary loss (refused).
/// </summary>
public sealed partial class TrainingEngine
{
    private async Task<TrainingResult> TrainMultiLabelAsync(TrainingPlan plan, ImageFolderDataset dataset, string folder, TrainingRun run, CancellationToken cancellationToken)
    {
        if (plan is not HeadPlan head)
        {
            throw new PlanException("mode", $"A multi-label model is trained with --mode head (one binary probe per label on the frozen features); {plan.Mode.ToString().ToLowerInvariant()} with a binary loss is not built yet.");
        }
        // --class-thresholds means for a multi-label model what it means for a multi-class one, per label: f1 is its default
        // rule, precision=P the same as --target-precision P.
        var targetPrecision = plan.TargetPrecision;
        if (plan.ClassThresholdGoal() is { } goal)
        {
            var fromGoal = goal.Kind == ThresholdGoalKind.Precision ? goal.TargetPrecision : (double?)null;
            if (targetPrecision is not null && targetPrecision != fromGoal)
            {
                throw new PlanException("class thresholds", string.Create(CultureInfo.InvariantCulture,
                    $"--class-thresholds {goal} and --target-precision {targetPrecision} ask for different thresholds; give one of them."));
            }
            targetPrecision = fromGoal;
        }
        if (!dataset.IsMultiLabel)
        {
            throw new DatasetException($"{dataset.Description}: the plan asks for a multi-label model but the data was read as multi-class; read it with DatasetOptions.MultiLabel (TrainingEngine.DatasetOptionsFor does).");
        }
        var progress = run.Progress;
        var labels = dataset.Labels;
        Info(progress, $"Multi-label model: {labels.Count} labels ({string.Join(", ", labels.Take(8))}{(labels.Count > 8 ? ", ..." : "")}); an image may carry any number of them. " +
            $"Plan: {string.Join("; ", PlanSettings.Describe(plan).Select(s => $"{s.Name} {s.Value}"))}.");
        var setup = ModelSetup.Create(plan, labels.Count, run.PretrainedDirectory, multiLabel: true);
        var model = setup.Model;
        try
        {
            var skipped = new List<SkippedImage>(dataset.Skipped);
            var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
            var loader = new ImageLoader(dataset, new ImageDecoder(dataset.Options.Limits), preprocessor.DecodeShorterSide, skipped, progress);
            LogStart(plan.Mode, dataset.Train.Count, dataset.Validation.Count, labels.Count, DeviceType.CPU, setup.BackboneSource);
            using var inputs = await FeatureInputs.PrepareAsync(model, preprocessor, setup.MeanImage, loader, run.FeatureBatchSize, head.MirrorFeatures, run.FeatureStore, run.FeatureFanOut,
                cancellationToken).ConfigureAwait(false);
            var cache = inputs.Cache;
            List<LabeledImage> images = [.. cache.TrainImages, .. cache.ValidationImages];
            var truth = new bool[images.Count * labels.Count];
            for (var i = 0; i < images.Count; i++)
            {
                for (var l = 0; l < labels.Count; l++)
                {
                    truth[(i * labels.Count) + l] = images[i].Labels!.Contains(labels[l], StringComparer.Ordinal);
                }
            }
            for (var l = 0; l < labels.Count; l++)
            {
                var carrying = Enumerable.Range(0, images.Count).Count(i => truth[(i * labels.Count) + l]);
                if (carrying == 0 || carrying == images.Count)
                {
                    throw new DatasetException($"Label \"{labels[l]}\" is carried by {carrying} of the {images.Count} images that decode; a probe needs images with and without it (see the skipped images).");
                }
            }
            var features = new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation);
            var flipped = cache.TrainFlipped is { } tf && cache.ValidationFlipped is { } vf ? new FeatureRows(cache.NumFeatures, tf, vf) : null;
            var fit = MultiLabelProbe.Fit(features, truth, labels, flipped, head.Folds, plan.Seed, targetPrecision, message => Info(progress, message), cancellationToken);
            SetHead(model, fit);
            model.eval();
            var evaluation = MultiLabelEvaluation.Compute(labels, fit.OutOfFoldProbabilities, truth, fit.Thresholds);
            foreach (var line in evaluation.Describe())
            {
                Info(progress, $"{line}{(line.StartsWith("Multi", StringComparison.Ordinal) ? " (out-of-fold: every image scored by probes that never saw it)" : "")}");
            }
            var predictions = Predictions(images, labels, fit, truth);
            // No out-of-distribution statistics yet: their score is the distance to the nearest class mean, and a multi-label
            // model's images have sets of labels, not one class. The strongest label's probability still gives monitor its quantiles.
            IReadOnlyList<double> quantiles = [.. Enumerable.Range(0, 21).Select(q => Math.Round(FeatureStatisticsFit.Quantile([.. predictions.Select(p => p.Confidence)], q / 20.0), 4))];
            var counts = labels.ToDictionary(l => l, l => dataset.TrainCounts[l] + dataset.ValidationCounts[l], StringComparer.Ordinal);
            var draft = new ModelManifest
            {
                Backbone = setup.BackboneId,
                BackboneSource = setup.BackboneSource,
                Head = model.HeadSpec,
                Labels = labels,
                Kind = ModelKind.MultiLabel,
                LabelThresholds = fit.Thresholds,
                Preprocessing = setup.Preprocessing,
                ConfidenceThreshold = 0,
                Training = new TrainingSummary
                {
                    Mode = "head",
                    Epochs = 0,
                    MaxEpochs = 0,
                    Seed = plan.Seed,
                    Optimizer = "lbfgs",
                    Device = "cpu",
                    TrainCounts = counts,
                    ValidationCounts = counts,
                    ClassImbalanceRatio = dataset.Balance.MaxMinRatio,
                    SkippedImages = skipped.Count,
                    Skipped = [.. skipped.Take(TrainingSummary.MaxSkippedListed).Select(s => new SkippedImageEntry(s.Source, s.Code, s.Message))],
                    DataHash = dataset.DataHash,
                },
                Metrics = new ValidationMetrics
                {
                    Accuracy = evaluation.ExactMatch,
                    Samples = evaluation.Samples,
                    MacroF1 = evaluation.MacroF1,
                    MicroF1 = evaluation.MicroF1,
                    MeanAveragePrecision = evaluation.MeanAveragePrecision,
                    ExactMatch = evaluation.ExactMatch,
                    ConfidenceQuantiles = quantiles,
                },
            };
            // The graph ends in sigmoids; its probabilities are checked against TorchSharp's on real images before anything is written.
            // The int8 check judges each label's decision on the out-of-fold images, through the fold heads that never saw them.
            var strata = images.Select(i => DataManifest.MultiLabelKey([.. i.Labels!.Order(StringComparer.Ordinal)])).ToList();
            var strataIndex = strata.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select((k, i) => (k, i)).ToDictionary(p => p.k, p => p.i, StringComparer.Ordinal);
            var reference = new HeldOutReference
            {
                Images = images,
                Labels = [.. strata.Select(k => strataIndex[k])], // the label set's index: the check's sample is stratified by it
                Logits = fit.OutOfFoldProbabilities,
                Evidence = "out-of-fold",
                MultiLabel = new MultiLabelReference
                {
                    Probabilities = fit.OutOfFoldProbabilities,
                    Truth = truth,
                    Thresholds = fit.Thresholds,
                    Temperatures = [.. fit.Probes.Select(p => p.Temperature)],
                    Heads = fit.FoldHeads,
                    HeadOf = fit.FoldOf,
                },
            };
            var manifest = await Packaging.Packager.PackAsync(model, draft, folder, cache.VerificationInputs, setup.MeanImage, null, plan.Precision, plan.Seed, images, reference, progress,
                cancellationToken).ConfigureAwait(false);
            return new TrainingResult
            {
                Plan = plan,
                Folder = Path.GetFullPath(folder),
                Manifest = manifest,
                Model = model,
                History = [new EpochMetrics(1, 0, evaluation.ExactMatch, 0, evaluation.ExactMatch, 0, fit.Seconds)],
                BestEpoch = 1,
                StoppedEarly = false,
                ResumedFromEpoch = 0,
                ValidationPredictions = predictions,
                Validation = CoOccurrence(labels, evaluation, images, truth, fit),
                MultiLabel = evaluation,
                LabelProbes = fit.Probes,
                ConfidenceThreshold = 0,
                SkippedImages = skipped,
                Device = "cpu",
                FeatureParityRelativeDifference = cache.ParityRelativeDifference,
                FeatureSeconds = cache.Seconds,
                MeanImage = setup.MeanImage,
                OutOfDistribution = null,
            };
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void SetHead(Models.ImageClassifier model, MultiLabelFit fit)
    {
        using var noGrad = no_grad();
        var state = model.Head.state_dict();
        state["fc.weight"].copy_(tensor(fit.Weight, [fit.Bias.Length, fit.Weight.Length / fit.Bias.Length]));
        state["fc.bias"].copy_(tensor(fit.Bias));
    }

    /// <summary>Each image's out-of-fold answer: its true and predicted label sets (joined by ';', empty for none), the strongest probability, all probabilities.</summary>
    private static List<ValidationPrediction> Predictions(List<LabeledImage> images, IReadOnlyList<string> labels, MultiLabelFit fit, bool[] truth)
    {
        var count = labels.Count;
        var thresholds = fit.Thresholds;
        var predictions = new List<ValidationPrediction>();
        for (var i = 0; i < images.Count; i++)
        {
            var row = fit.OutOfFoldProbabilities.AsSpan(i * count, count).ToArray();
            var predicted = DataManifest.MultiLabelKey([.. Enumerable.Range(0, count).Where(l => row[l] >= thresholds[l]).Select(l => labels[l])]);
            var actual = DataManifest.MultiLabelKey([.. Enumerable.Range(0, count).Where(l => truth[(i * count) + l]).Select(l => labels[l])]);
            predictions.Add(new ValidationPrediction(images[i].Source, actual, predicted, row.Max(), [.. row.Select(p => (float)p)]));
        }
        return predictions;
    }

    /// <summary>
    /// The multi-class report's shape for a multi-label model: per label its figures at its threshold, accuracy as the exact-match
    /// ratio, and as the matrix the label co-occurrence (row: a label the image carries; column: a label predicted for it).
    /// </summary>
    private static EvaluationReport CoOccurrence(IReadOnlyList<string> labels, MultiLabelReport evaluation, List<LabeledImage> images, bool[] truth, MultiLabelFit fit)
    {
        var count = labels.Count;
        var matrix = new int[count][];
        for (var a = 0; a < count; a++)
        {
            matrix[a] = new int[count];
            for (var i = 0; i < images.Count; i++)
            {
                if (!truth[(i * count) + a])
                {
                    continue;
                }
                for (var p = 0; p < count; p++)
                {
                    matrix[a][p] += fit.OutOfFoldProbabilities[(i * count) + p] >= fit.Thresholds[p] ? 1 : 0;
                }
            }
        }
        return new EvaluationReport(labels, evaluation.Samples, evaluation.ExactMatch, evaluation.MacroF1,
            [.. evaluation.PerLabel.Select(m => new ClassMetrics(m.Label, m.Precision, m.Recall, m.F1, m.Support))], matrix);
    }
}
