using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Fitting;
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
/// the multi-class check allows. Finetune mode trains with a binary loss on the fine-tune path (<see cref="FinetuneMultiLabelAsync"/>).
/// Not built yet: out-of-distribution statistics (their score is the distance to the nearest class) and full mode (refused).
/// </summary>
public sealed partial class TrainingEngine
{
    private async Task<TrainingResult> TrainMultiLabelAsync(TrainingPlan plan, ImageFolderDataset dataset, string folder, TrainingRun run, CancellationToken cancellationToken)
    {
        if (plan is FullPlan)
        {
            throw new PlanException("mode", "A multi-label model is trained with --mode head (one binary probe per label on the frozen features) or finetune (a binary loss on the cached frozen prefix); full with a binary loss is not built yet.");
        }
        if (plan is FinetunePlan finetunePlan)
        {
            if (finetunePlan is not { CachesPrefix: true, RefitHead: true })
            {
                throw new PlanException("mode", "A multi-label fine-tune trains on the cached frozen prefix and refits its per-label probes on the kept backbone (a ResNet whose first unfrozen stage is after layer1, cached prefix views above 0, head refit on); fine-tuning on whole images with a binary loss is not built yet.");
            }
            if (finetunePlan.Selection == EpochSelection.CalibratedLoss)
            {
                throw new PlanException("epoch selection", "A multi-label fine-tune keeps its epochs on the validation loss (each image's summed per-label binary cross-entropy); the calibrated loss is not built for it.");
            }
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
            var device = plan is HeadPlan ? CPU : ResolveDevice(run.Device);
            LogStart(plan.Mode, dataset.Train.Count, dataset.Validation.Count, labels.Count, device.type, setup.BackboneSource);
            var fitted = plan is FinetunePlan finetune
                ? await FinetuneMultiLabelAsync(finetune, dataset, setup, preprocessor, loader, run, device, targetPrecision, cancellationToken).ConfigureAwait(false)
                : await FitMultiLabelProbesAsync((HeadPlan)plan, setup, preprocessor, loader, run, labels, targetPrecision, cancellationToken).ConfigureAwait(false);
            var fit = fitted.Fit;
            SetHead(model, fit);
            model.eval();

            // Every figure, and the int8 check, comes from the scored images' out-of-fold probabilities: every image in head mode (and
            // a fine-tune that kept its start), the validation images after epochs that trained the backbone on the others.
            var count = labels.Count;
            var images = fitted.Scored.Select(i => fitted.Images[i]).ToList();
            var probabilities = fitted.Scored.SelectMany(i => fit.OutOfFoldProbabilities.AsSpan(i * count, count).ToArray()).ToArray();
            var truth = fitted.Scored.SelectMany(i => fitted.Truth.AsSpan(i * count, count).ToArray()).ToArray();
            var evaluation = MultiLabelEvaluation.Compute(labels, probabilities, truth, fit.Thresholds);
            // Say what was measured: every image (out-of-fold), or a kept epoch's validation images alone (still each scored by probes that never saw it).
            var everyImage = fitted.Scored.Length == fitted.Images.Count;
            var measured = everyImage
                ? " (out-of-fold: every image scored by probes that never saw it)"
                : $" (on the {fitted.Scored.Length} validation images, which the kept backbone never trained on; each scored by probes that never saw it)";
            foreach (var line in evaluation.Describe())
            {
                Info(progress, $"{line}{(line.StartsWith("Multi", StringComparison.Ordinal) ? measured : "")}");
            }
            var predictions = Predictions(images, labels, probabilities, fit.Thresholds, truth);
            // No out-of-distribution statistics yet: their score is the distance to the nearest class mean, and a multi-label
            // model's images have sets of labels, not one class. The strongest label's probability still gives monitor its quantiles.
            IReadOnlyList<double> quantiles = [.. Enumerable.Range(0, 21).Select(q => Math.Round(FeatureStatisticsFit.Quantile([.. predictions.Select(p => p.Confidence)], q / 20.0), 4))];
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
                Training = fitted.Summary with
                {
                    Device = DeviceName(plan, device),
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
            // The int8 check judges each label's decision on the scored images, through the fold heads that never saw them.
            var strata = images.Select(i => DataManifest.MultiLabelKey([.. i.Labels!.Order(StringComparer.Ordinal)])).ToList();
            var strataIndex = strata.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).Select((k, i) => (k, i)).ToDictionary(p => p.k, p => p.i, StringComparer.Ordinal);
            var reference = new HeldOutReference
            {
                Images = images,
                Labels = [.. strata.Select(k => strataIndex[k])], // the label set's index: the check's sample is stratified by it
                Logits = probabilities,
                Evidence = everyImage ? "out-of-fold" : "validation",
                MultiLabel = new MultiLabelReference
                {
                    Probabilities = probabilities,
                    Truth = truth,
                    Thresholds = fit.Thresholds,
                    Temperatures = [.. fit.Probes.Select(p => p.Temperature)],
                    Heads = fit.FoldHeads,
                    HeadOf = [.. fit.FoldOf.Select(folds => fitted.Scored.Select(i => folds[i]).ToArray())],
                },
            };
            var manifest = await Packaging.Packager.PackAsync(model, draft, folder, fitted.VerificationInputs, setup.MeanImage, null, plan.Precision, plan.Seed, fitted.Images, reference, progress,
                cancellationToken).ConfigureAwait(false);
            return new TrainingResult
            {
                Plan = plan,
                Folder = Path.GetFullPath(folder),
                Manifest = manifest,
                Model = model,
                History = fitted.History ?? [new EpochMetrics(1, 0, evaluation.ExactMatch, 0, evaluation.ExactMatch, 0, fit.Seconds)],
                BestEpoch = fitted.History is null ? 1 : fitted.BestEpoch,
                StoppedEarly = fitted.StoppedEarly,
                ResumedFromEpoch = fitted.ResumedFromEpoch,
                ValidationPredictions = predictions,
                Validation = CoOccurrence(labels, evaluation, probabilities, fit.Thresholds, truth),
                MultiLabel = evaluation,
                LabelProbes = fit.Probes,
                ConfidenceThreshold = 0,
                SkippedImages = skipped,
                Device = DeviceName(plan, device),
                FeatureParityRelativeDifference = fitted.FeatureParityRelativeDifference,
                FeatureSeconds = fitted.FeatureSeconds,
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

    /// <summary>Head mode: one calibrated binary probe per label on the frozen backbone's features of every image, each image scored out-of-fold.</summary>
    private static async Task<MultiLabelFitted> FitMultiLabelProbesAsync(HeadPlan head, ModelSetup setup, ImagePreprocessor preprocessor, ImageLoader loader, TrainingRun run,
        IReadOnlyList<string> labels, double? targetPrecision, CancellationToken cancellationToken)
    {
        using var inputs = await FeatureInputs.PrepareAsync(setup.Model, preprocessor, setup.MeanImage, loader, run.FeatureBatchSize, head.MirrorFeatures, run.FeatureStore, run.FeatureFanOut,
            cancellationToken).ConfigureAwait(false);
        var cache = inputs.Cache;
        List<LabeledImage> images = [.. cache.TrainImages, .. cache.ValidationImages];
        var truth = Truth(images, labels);
        RequireBothSides(truth, labels, images.Count, "that decode");
        var features = new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation);
        var flipped = cache.TrainFlipped is { } tf && cache.ValidationFlipped is { } vf ? new FeatureRows(cache.NumFeatures, tf, vf) : null;
        var fit = MultiLabelProbe.Fit(features, truth, labels, flipped, head.Folds, head.Seed, targetPrecision, null, message => Info(run.Progress, message), cancellationToken);
        var counts = Positives(labels, truth);
        return new MultiLabelFitted
        {
            Images = images,
            Truth = truth,
            Fit = fit,
            Scored = [.. Enumerable.Range(0, images.Count)],
            VerificationInputs = cache.VerificationInputs,
            Summary = new TrainingSummary
            {
                Mode = "head",
                Epochs = 0,
                MaxEpochs = 0,
                Seed = head.Seed,
                Optimizer = "lbfgs",
                TrainCounts = counts,
                ValidationCounts = counts,
            },
            FeatureParityRelativeDifference = cache.ParityRelativeDifference,
            FeatureSeconds = cache.Seconds,
        };
    }

    /// <summary>
    /// Finetune with a binary loss, on the fine-tune path: the cached frozen prefix (BatchNorm statistics frozen), the calibrated
    /// per-label probes on the training images' pretrained features as the start (epoch 0), the epochs on each image's summed
    /// per-label binary cross-entropy, an epoch kept only when its per-image validation losses are clearly below the start's, and
    /// the probes fitted again on the kept backbone's features of every image, their L2 strengths, temperatures and thresholds
    /// chosen on the validation images (every image when the start was kept: head mode's model).
    /// </summary>
    private async Task<MultiLabelFitted> FinetuneMultiLabelAsync(FinetunePlan plan, ImageFolderDataset dataset, ModelSetup setup, ImagePreprocessor preprocessor, ImageLoader loader,
        TrainingRun run, Device device, double? targetPrecision, CancellationToken cancellationToken)
    {
        var progress = run.Progress;
        var labels = dataset.Labels;
        var model = setup.Model;
        var (checkpoint, state) = StartCheckpoint(plan, dataset, run, progress);
        using var inputs = (IEpochInputs)await PrepareInputsAsync(plan, setup, preprocessor, loader, run, device, cancellationToken).ConfigureAwait(false);
        var train = Truth(inputs.TrainImages, labels);
        var validation = Truth(inputs.ValidationImages, labels);
        RequireBothSides(train, labels, inputs.TrainImages.Count, "of the training split that decode");
        if (state is null && plan.Start == HeadStart.Probe)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            var pretrained = await inputs.FeaturesAsync(model, cancellationToken).ConfigureAwait(false);
            var start = MultiLabelProbe.Fit(new FeatureRows(pretrained.NumFeatures, pretrained.Train), train, labels, null, plan.Folds, plan.Seed, targetPrecision, null,
                message => Info(progress, message), cancellationToken);
            SetHead(model, start);
            Info(progress, string.Create(CultureInfo.InvariantCulture,
                $"Head initialised from the calibrated per-label probes on the {inputs.TrainImages.Count} training images' frozen features ({watch.Elapsed.TotalSeconds:F1} s); the validation split decides the epochs, the start included."));
        }
        var epochs = new EpochFitter(logger).Run(plan, labels, model, inputs, device, state, checkpoint, progress,
            new MultiLabelTargets(labels.Count, train, validation), cancellationToken);

        // The probes fitted again as head mode fits them, on the kept backbone's features of every image.
        var refitWatch = System.Diagnostics.Stopwatch.StartNew();
        var features = await inputs.FeaturesAsync(model, cancellationToken).ConfigureAwait(false);
        var (trainCount, validationCount) = (inputs.TrainImages.Count, inputs.ValidationImages.Count);
        List<LabeledImage> images = [.. inputs.TrainImages, .. inputs.ValidationImages];
        bool[] truth = [.. train, .. validation];
        int[] scored = epochs.BestEpoch == 0 ? [.. Enumerable.Range(0, images.Count)] : [.. Enumerable.Range(trainCount, validationCount)];
        var fit = MultiLabelProbe.Fit(new FeatureRows(features.NumFeatures, features.Train, features.Validation), truth, labels, null, plan.Folds, plan.Seed, targetPrecision,
            epochs.BestEpoch == 0 ? null : scored, message => Info(progress, message), cancellationToken);
        Info(progress, string.Create(CultureInfo.InvariantCulture,
            $"Per-label probes refitted on the kept backbone (epoch {epochs.BestEpoch}) over all {images.Count} images; their L2 strengths, temperatures and thresholds chosen on the out-of-fold probabilities of " +
            $"{(epochs.BestEpoch == 0 ? "every image (the backbone is the pretrained one)" : $"the {validationCount} validation images (the backbone never trained on them)")}; {refitWatch.Elapsed.TotalSeconds:F1} s."));
        return new MultiLabelFitted
        {
            Images = images,
            Truth = truth,
            Fit = fit,
            Scored = scored,
            VerificationInputs = epochs.VerificationInputs,
            Summary = epochs.Summary with
            {
                ValidationSplit = dataset.ExplicitSplit ? null : plan.ValSplit,
                TrainCounts = Positives(labels, train),
                ValidationCounts = Positives(labels, [.. scored.SelectMany(i => truth.AsSpan(i * labels.Count, labels.Count).ToArray())]),
            },
            History = epochs.History,
            BestEpoch = epochs.BestEpoch,
            StoppedEarly = epochs.StoppedEarly,
            ResumedFromEpoch = epochs.ResumedFromEpoch,
        };
    }

    /// <summary>Whether image i carries label l, n x labels row-major.</summary>
    private static bool[] Truth(IReadOnlyList<LabeledImage> images, IReadOnlyList<string> labels)
    {
        var truth = new bool[images.Count * labels.Count];
        for (var i = 0; i < images.Count; i++)
        {
            for (var l = 0; l < labels.Count; l++)
            {
                truth[(i * labels.Count) + l] = images[i].Labels!.Contains(labels[l], StringComparer.Ordinal);
            }
        }
        return truth;
    }

    /// <summary>Images carrying each label.</summary>
    private static Dictionary<string, int> Positives(IReadOnlyList<string> labels, bool[] truth) =>
        labels.Select((label, l) => (label, l)).ToDictionary(p => p.label, p => Enumerable.Range(0, truth.Length / labels.Count).Count(i => truth[(i * labels.Count) + p.l]), StringComparer.Ordinal);

    private static void RequireBothSides(bool[] truth, IReadOnlyList<string> labels, int images, string which)
    {
        for (var l = 0; l < labels.Count; l++)
        {
            var carrying = Enumerable.Range(0, images).Count(i => truth[(i * labels.Count) + l]);
            if (carrying == 0 || carrying == images)
            {
                throw new DatasetException($"Label \"{labels[l]}\" is carried by {carrying} of the {images} images {which}; a probe needs images with and without it (see the skipped images).");
            }
        }
    }

    /// <summary>A multi-label fit: the images (training split first), their labels, the per-label probes, which images the figures come from, and the run.</summary>
    private sealed record MultiLabelFitted
    {
        public required List<LabeledImage> Images { get; init; }

        /// <summary>Images x labels, row-major.</summary>
        public required bool[] Truth { get; init; }

        public required MultiLabelFit Fit { get; init; }

        /// <summary>The images whose out-of-fold probabilities give the thresholds, the figures and the int8 check.</summary>
        public required int[] Scored { get; init; }

        public required IReadOnlyList<float[]> VerificationInputs { get; init; }

        /// <summary>The manifest's training summary, without what the data set says (the caller adds it).</summary>
        public required TrainingSummary Summary { get; init; }

        /// <summary>A fine-tune's epochs (0 the start); null in head mode.</summary>
        public IReadOnlyList<EpochMetrics>? History { get; init; }

        public int BestEpoch { get; init; }

        public bool StoppedEarly { get; init; }

        public int ResumedFromEpoch { get; init; }

        public double? FeatureParityRelativeDifference { get; init; }

        public double? FeatureSeconds { get; init; }
    }

    private static void SetHead(Models.ImageClassifier model, MultiLabelFit fit)
    {
        using var noGrad = no_grad();
        var state = model.Head.state_dict();
        state["fc.weight"].copy_(tensor(fit.Weight, [fit.Bias.Length, fit.Weight.Length / fit.Bias.Length]));
        state["fc.bias"].copy_(tensor(fit.Bias));
    }

    /// <summary>Each image's out-of-fold answer: its true and predicted label sets (joined by ';', empty for none), the strongest probability, all probabilities.</summary>
    private static List<ValidationPrediction> Predictions(List<LabeledImage> images, IReadOnlyList<string> labels, double[] probabilities, IReadOnlyList<double> thresholds, bool[] truth)
    {
        var count = labels.Count;
        var predictions = new List<ValidationPrediction>();
        for (var i = 0; i < images.Count; i++)
        {
            var row = probabilities.AsSpan(i * count, count).ToArray();
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
    private static EvaluationReport CoOccurrence(IReadOnlyList<string> labels, MultiLabelReport evaluation, double[] probabilities, IReadOnlyList<double> thresholds, bool[] truth)
    {
        var count = labels.Count;
        var n = truth.Length / count;
        var matrix = new int[count][];
        for (var a = 0; a < count; a++)
        {
            matrix[a] = new int[count];
            for (var i = 0; i < n; i++)
            {
                if (!truth[(i * count) + a])
                {
                    continue;
                }
                for (var p = 0; p < count; p++)
                {
                    matrix[a][p] += probabilities[(i * count) + p] >= thresholds[p] ? 1 : 0;
                }
            }
        }
        return new EvaluationReport(labels, evaluation.Samples, evaluation.ExactMatch, evaluation.MacroF1,
            [.. evaluation.PerLabel.Select(m => new ClassMetrics(m.Label, m.Precision, m.Recall, m.F1, m.Support))], matrix);
    }
}
