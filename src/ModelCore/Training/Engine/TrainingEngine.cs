using System.Globalization;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Fitting;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.OutOfDistribution;
using ServerlessClassifier.ModelCore.Packaging;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Prefix;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>
/// Transfer learning with TorchSharp, as one pipeline that every plan goes through, stage by stage, each stage taking what
/// the one before it made: the data (a checked, split <see cref="ImageFolderDataset"/>) -> the inputs (the frozen
/// backbone's features, the cached frozen prefix, or images; <see cref="ITrainingInputs"/>) -> the fit (a linear probe
/// for a <see cref="HeadPlan"/>; the epoch loop, with the probe as its start and, on the cached prefix, a probe refit at
/// its end, for an <see cref="EpochPlan"/>) -> calibration (<see cref="CalibrationStage"/>) -> out-of-distribution
/// statistics (<see cref="OutOfDistributionStage"/>) -> packaging (the verified ONNX graph, its precision, the model
/// folder: <see cref="Packager"/>) -> the result. No plan skips a stage. Same plan, data and device give the same model.
/// </summary>
public sealed partial class TrainingEngine(ILogger<TrainingEngine>? logger = null)
{
    private readonly ILogger logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>Trains on <paramref name="dataset"/> as <paramref name="plan"/> says and writes the model package to <paramref name="folder"/>.</summary>
    /// <param name="plan">What to do; resolved here (<see cref="TrainingPlan.Resolve"/>).</param>
    /// <param name="dataset">The labelled images, split with the plan's seed and validation fraction (<see cref="DatasetOptionsFor"/>).</param>
    /// <param name="folder">The model folder to write (created when missing).</param>
    /// <param name="run">How the run executes: checkpoint folder and resume, device, feature store, progress.</param>
    /// <param name="cancellationToken">Stops between batches; the last completed epoch's checkpoint is intact.</param>
    /// <exception cref="PlanException">The plan cannot run as asked.</exception>
    /// <exception cref="TrainingException">The checkpoint was made with another plan or data, or the serving engine disagrees with TorchSharp.</exception>
    public Task<TrainingResult> TrainAsync(TrainingPlan plan, ImageFolderDataset dataset, string folder, TrainingRun? run = null, CancellationToken cancellationToken = default)
    {
        // Before the async body is compiled: the JIT may run TorchSharp's static constructor when it compiles a method that
        // reads torch's statics, and that must not happen before the natives are loaded.
        TorchRuntime.EnsureInitialized();
        return TrainCoreAsync(plan, dataset, folder, run ?? new TrainingRun(), cancellationToken);
    }

    /// <summary>The data set options a plan's split needs (its validation fraction and seed).</summary>
    public static DatasetOptions DatasetOptionsFor(TrainingPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        return new DatasetOptions { ValSplit = plan.ValSplit, Seed = plan.Seed, MultiLabel = plan.MultiLabel == true ? true : null };
    }

    /// <summary><c>auto</c>: CUDA when <c>torch.cuda.is_available()</c>, else the CPU.</summary>
    public static Device ResolveDevice(string device)
    {
        TorchRuntime.EnsureInitialized();
        return device switch
        {
            "cpu" => CPU,
            "cuda" => cuda.is_available() ? CUDA : throw new InvalidOperationException("--device cuda was asked for but torch.cuda.is_available() is false (the CPU libtorch package is referenced, or no GPU is visible)."),
            "auto" => cuda.is_available() ? CUDA : CPU,
            _ => throw new ArgumentException($"Unknown device \"{device}\"; use auto, cpu or cuda.", nameof(device)),
        };
    }

    private async Task<TrainingResult> TrainCoreAsync(TrainingPlan plan, ImageFolderDataset dataset, string folder, TrainingRun run, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        plan = plan.Resolve();
        Validate(plan, dataset, run);
        if (dataset.IsMultiLabel || plan.MultiLabel == true || plan.TargetPrecision is not null)
        {
            return await TrainMultiLabelAsync(plan, dataset, folder, run, cancellationToken).ConfigureAwait(false);
        }
        var progress = run.Progress;
        var device = ResolveDevice(run.Device);
        var (checkpoint, state) = StartCheckpoint(plan, dataset, run, progress);
        Info(progress, $"Plan: {string.Join("; ", PlanSettings.Describe(plan).Select(s => $"{s.Name} {s.Value}"))}.");

        // Stage 1, the data: what the data set left out, and the decoding serving does (large JPEGs at reduced scale).
        var setup = ModelSetup.Create(plan, dataset.Labels.Count, run.PretrainedDirectory);
        var model = setup.Model;
        try
        {
            if (setup.Backbone.Source == Backbones.BackboneSource.Random)
            {
                LogRandomBackbone(setup.BackboneId);
            }
            var skipped = new List<SkippedImage>(dataset.Skipped);
            var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
            var loader = new ImageLoader(dataset, new ImageDecoder(dataset.Options.Limits), preprocessor.DecodeShorterSide, skipped, progress);
            LogStart(plan.Mode, dataset.Train.Count, dataset.Validation.Count, dataset.Labels.Count, device.type, setup.BackboneSource);

            // Stage 2, the inputs; stage 3, the fit.
            var steps = new List<StepTime>();
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var inputs = await PrepareInputsAsync(plan, setup, preprocessor, loader, run, device, cancellationToken).ConfigureAwait(false);
            try
            {
                CheckClasses(dataset, inputs.TrainLabels);
                steps.Add(new StepTime("inputs", clock.Elapsed.TotalSeconds));
                clock.Restart();
                var fitted = await FitAsync(plan, dataset.Labels, model, inputs, device, state, checkpoint, progress, cancellationToken).ConfigureAwait(false);
                steps.Add(new StepTime("fit", clock.Elapsed.TotalSeconds));

                // Stage 4, calibration; stage 5, out-of-distribution statistics of the final model's features.
                clock.Restart();
                var calibrated = CalibrationStage.Calibrate(fitted, model, dataset.Labels, plan.Seed, plan.ClassThresholdGoal(), progress);
                steps.Add(new StepTime("calibration", clock.Elapsed.TotalSeconds));
                Int8FeatureEvidence? int8Evidence = null;
                if (inputs is FeatureInputs { Cache: { Int8: { } int8 } cache })
                {
                    // Fitted on the int8 backbone's features: the int8 check now, on the calibration images out-of-fold; when it
                    // fails, every image's fp32 features are extracted and the head fitted again (as with int8 features off).
                    var evidence = fitted.Judged;
                    var comparison = Int8FeatureCheck.Compare(int8.Sample, evidence.Images, evidence.Labels, new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation),
                        evidence.Heads!, evidence.HeadOf!, dataset.Labels.Count, calibrated.Calibration.Temperature);
                    var (passed, why) = Int8FeatureCheck.Judge(comparison, plan.Precision.MaxAccuracyDropPoints);
                    var (low, high) = comparison.AccuracyDropInterval;
                    var figures = string.Create(CultureInfo.InvariantCulture,
                        $"on {comparison.Images} {Int8FeatureCheck.Evidence} images, the fold heads are right on {comparison.Int8Accuracy:P1} with int8 features vs {comparison.Fp32Accuracy:P1} with fp32 features, " +
                        $"{comparison.AccuracyDropPoints:F1} points (95 % interval {low:F1} to {high:F1}; at most {plan.Precision.MaxAccuracyDropPoints:0.##} allowed); top-1 agreement {comparison.Top1Agreement:P1}");
                    if (passed)
                    {
                        int8Evidence = new Int8FeatureEvidence(comparison, evidence.Images.Count, int8.VerificationInputs, int8.VerificationFeatures, int8.VerificationImages);
                        Info(progress, $"int8 check of the head fitted on int8 features: {figures}: met.");
                    }
                    else
                    {
                        Info(progress, $"int8 check of the head fitted on int8 features: {figures}: NOT met ({why}), so every image's fp32 features are extracted and the head fitted again on them, as with int8 features off.");
                        clock.Restart();
                        inputs.Dispose();
                        var skippedBefore = skipped.Count;
                        inputs = await FeatureInputs.PrepareAsync(model, preprocessor, setup.MeanImage, loader, run.FeatureBatchSize, ((HeadPlan)plan).MirrorFeatures, null, null,
                            cancellationToken, collected: cache.Calibration).ConfigureAwait(false);
                        skipped.RemoveRange(skippedBefore, skipped.Count - skippedBefore); // the same images, told once
                        fitted = await FitAsync(plan, dataset.Labels, model, inputs, device, state, checkpoint, progress, cancellationToken).ConfigureAwait(false);
                        calibrated = CalibrationStage.Calibrate(fitted, model, dataset.Labels, plan.Seed, plan.ClassThresholdGoal(), progress);
                        steps.Add(new StepTime("fp32 features, fit and calibration again (int8 check not met)", clock.Elapsed.TotalSeconds));
                    }
                }
                clock.Restart();
                var features = fitted.Features ?? await inputs.FeaturesAsync(model, cancellationToken).ConfigureAwait(false);
                var (ood, quantiles) = OutOfDistributionStage.Fit(features, dataset.Labels.Count, plan.Seed, [.. calibrated.Predictions.Select(p => p.Confidence)], progress);
                steps.Add(new StepTime("out-of-distribution", clock.Elapsed.TotalSeconds));

                // Stage 6, packaging: the verified graph, its precision, the model folder.
                var draft = Draft(plan, dataset, setup, calibrated, skipped, device) with
                {
                    OutOfDistribution = ood.Spec,
                    Metrics = calibrated.Metrics with { ConfidenceQuantiles = quantiles },
                };
                // The int8 check is judged on the fit's held-out evidence, against the fp32 answers already computed there.
                var judged = fitted.Judged;
                var reference = new HeldOutReference
                {
                    Images = judged.Images,
                    Labels = judged.Labels,
                    Logits = judged.Logits,
                    Temperature = calibrated.Calibration.Temperature,
                    Heads = judged.Heads,
                    HeadOf = judged.HeadOf,
                    Evidence = judged.Evidence,
                    Int8Features = int8Evidence,
                };
                var manifest = await Packager.PackAsync(model, draft, folder, fitted.VerificationInputs, setup.MeanImage, ood.Statistics, plan.Precision, plan.Seed,
                    dataset.Train, reference, progress, cancellationToken, steps, features.Calibration).ConfigureAwait(false);

                // Stage 7, the result.
                return new TrainingResult
                {
                    Plan = plan,
                    Folder = Path.GetFullPath(folder),
                    Manifest = manifest,
                    Model = model,
                    History = fitted.History,
                    BestEpoch = fitted.BestEpoch,
                    StoppedEarly = fitted.StoppedEarly,
                    ResumedFromEpoch = fitted.ResumedFromEpoch,
                    ValidationPredictions = calibrated.Predictions,
                    Validation = calibrated.Report,
                    ConfidenceThreshold = calibrated.Threshold,
                    ClassThresholds = calibrated.ClassThresholds,
                    SkippedImages = skipped,
                    Device = DeviceName(plan, device),
                    FeatureParityRelativeDifference = fitted.FeatureParityRelativeDifference,
                    FeatureSeconds = fitted.FeatureSeconds,
                    Steps = steps,
                    MeanImage = setup.MeanImage,
                    OutOfDistribution = ood.Statistics,
                };
            }
            finally
            {
                inputs.Dispose();
            }
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static void Validate(TrainingPlan plan, ImageFolderDataset dataset, TrainingRun run)
    {
        if (!dataset.ExplicitSplit && (dataset.Options.Seed != plan.Seed || dataset.Options.ValSplit != plan.ValSplit))
        {
            throw new ArgumentException(
                $"The dataset was split with seed {dataset.Options.Seed} and validation fraction {dataset.Options.ValSplit}, the plan says {plan.Seed} and {plan.ValSplit}; load it with TrainingEngine.DatasetOptionsFor(plan).",
                nameof(dataset));
        }
        var featureCache = plan is HeadPlan { FeatureCache: true };
        if (featureCache != run.FeatureStore is not null)
        {
            throw new ArgumentException(featureCache
                ? "The plan keeps head-mode features in a feature store, but the run names none."
                : "The run names a feature store, but the plan does not keep features (only a head plan with the feature cache does).", nameof(run));
        }
        if (run.Resume && run.CheckpointDirectory is null)
        {
            throw new ArgumentException("Resuming needs the checkpoint directory.", nameof(run));
        }
    }

    /// <summary>
    /// The run's record: on a resume, the checkpoint's plan and data must be this run's (else nothing is trained), and its
    /// epoch state is where the loop continues; otherwise a new record of this plan and data.
    /// </summary>
    private static (EpochCheckpoint? Checkpoint, EpochState? State) StartCheckpoint(TrainingPlan plan, ImageFolderDataset dataset, TrainingRun run, IProgress<TrainingProgress>? progress)
    {
        if (run.CheckpointDirectory is not { } folder)
        {
            return (null, null);
        }
        if (run.Resume && RunCheckpoint.Read(folder) is { } record)
        {
            var differences = RunCheckpoint.Differences(record.Plan, plan);
            var other = differences.Count > 0 ? $"another plan ({RunCheckpoint.Describe(differences)})"
                : record.DataHash != dataset.DataHash ? "other data (the images or their sizes changed since)"
                : null;
            if (other is null)
            {
                if (record.Epochs is { } epochs)
                {
                    return (new EpochCheckpoint(folder, record, run.CheckpointSaved), epochs);
                }
                Info(progress, $"The checkpoint in {folder} has no completed epoch; starting from the beginning.");
                return (new EpochCheckpoint(folder, record, run.CheckpointSaved), null);
            }
            if (!run.ReplaceOtherRun)
            {
                throw new TrainingException(
                    $"The checkpoint in {folder} was made with {other}; resume with the same {(differences.Count > 0 ? "plan" : "data")}, or start without resume (or in another folder).");
            }
            Info(progress, $"The checkpoint in {folder} was made with {other}: starting a new run in its place.");
        }
        else if (run.Resume)
        {
            Info(progress, $"No checkpoint in {folder}; starting from the beginning.");
        }
        var begun = RunCheckpoint.Begin(folder, plan, dataset.DataHash);
        run.CheckpointSaved?.Invoke(folder);
        return (new EpochCheckpoint(folder, begun, run.CheckpointSaved), null);
    }

    private static async Task<ITrainingInputs> PrepareInputsAsync(TrainingPlan plan, ModelSetup setup, ImagePreprocessor preprocessor, ImageLoader loader, TrainingRun run, Device device,
        CancellationToken cancellationToken)
    {
        var model = setup.Model;
        switch (plan)
        {
            case HeadPlan head:
                return await FeatureInputs.PrepareAsync(model, preprocessor, setup.MeanImage, loader, run.FeatureBatchSize, head.MirrorFeatures, run.FeatureStore, run.FeatureFanOut,
                    cancellationToken, ServingGraphs.CalibrationRequest(plan.Precision, loader.Dataset.Train, plan.Seed), plan.Precision.Int8Features).ConfigureAwait(false);
            case EpochPlan epochs:
                var augmentation = new Augmentation(setup.Preprocessing, setup.MeanImage, epochs.CropScaleMin, epochs.MirrorAugmentation);
                return epochs is FinetunePlan { CachesPrefix: true } finetune
                    ? await PrefixInputs.PrepareAsync(model, finetune.FirstStage(model.Backbone.Architecture), finetune.PrefixViews!.Value, finetune.ChannelsLastSuffix, plan.Seed, run.FeatureBatchSize, loader,
                        preprocessor, augmentation, device, loader.Progress, cancellationToken).ConfigureAwait(false)
                    : await ImageInputs.PrepareAsync(loader, preprocessor, augmentation, run.FeatureBatchSize, device, cancellationToken).ConfigureAwait(false);
            default:
                throw new ArgumentOutOfRangeException(nameof(plan), plan.Mode, "Unknown plan.");
        }
    }

    private async Task<Fitted> FitAsync(TrainingPlan plan, IReadOnlyList<string> classes, ImageClassifier model, ITrainingInputs inputs, Device device, EpochState? state,
        EpochCheckpoint? checkpoint, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        switch (plan, inputs)
        {
            case (HeadPlan head, FeatureInputs features):
                return ProbeFitter.Fit(head, model, classes, features.Cache, progress, cancellationToken);
            case (EpochPlan epochs, IEpochInputs batches):
                FeatureCache? startFeatures = null;
                if (state is null && epochs.Start == HeadStart.Probe)
                {
                    startFeatures = await HeadRefit.StartFromProbeAsync(epochs, classes, model, batches, progress, cancellationToken).ConfigureAwait(false);
                }
                var fitted = new EpochFitter(logger).Run(epochs, classes, model, batches, device, state, checkpoint, progress, null, cancellationToken);
                return epochs is FinetunePlan { RefitHead: true } finetune
                    ? await HeadRefit.RefitAsync(finetune, classes, model, batches, fitted, startFeatures, progress, cancellationToken).ConfigureAwait(false)
                    : fitted;
            default:
                throw new ArgumentException($"A {plan.Mode} plan cannot train on {inputs.GetType().Name}.", nameof(inputs));
        }
    }

    /// <summary>The manifest draft every plan writes: the model's description, what the data set says about the run, the calibration and its figures.</summary>
    private static ModelManifest Draft(TrainingPlan plan, ImageFolderDataset dataset, ModelSetup setup, Calibrated calibrated, List<SkippedImage> skipped, Device device) => new()
    {
        Backbone = setup.BackboneId,
        BackboneSource = setup.BackboneSource,
        Head = setup.Model.HeadSpec,
        Labels = dataset.Labels,
        // Trained from a Custom Vision export: its tag ids, for the labels the model has.
        CustomVisionTagIds = dataset.Manifest?.TagIds is { } tags
            ? dataset.Labels.Where(tags.ContainsKey).ToDictionary(l => l, l => tags[l], StringComparer.Ordinal)
            : null,
        Preprocessing = setup.Preprocessing,
        ConfidenceThreshold = calibrated.Threshold,
        ClassThresholds = plan.ClassThresholdGoal() is { } goal && calibrated.ClassThresholds is { } choices ? ClassThresholdChooser.Spec(goal, choices) : null,
        Training = calibrated.Fit.Summary with
        {
            ValidationSplit = plan is HeadPlan || dataset.ExplicitSplit ? null : plan.ValSplit,
            Device = DeviceName(plan, device),
            ClassImbalanceRatio = dataset.Balance.MaxMinRatio,
            SkippedImages = skipped.Count,
            Skipped = [.. skipped.Take(TrainingSummary.MaxSkippedListed).Select(s => new SkippedImageEntry(s.Source, s.Code, s.Message))],
            DataHash = dataset.DataHash,
            Calibration = calibrated.Calibration,
        },
        Metrics = calibrated.Metrics,
    };

    /// <summary>Head mode fits on the CPU whatever the device (ONNX Runtime features, an L-BFGS probe).</summary>
    private static string DeviceName(TrainingPlan plan, Device device) => plan is EpochPlan && device.type == DeviceType.CUDA ? "cuda" : "cpu";

    private static void CheckClasses(ImageFolderDataset dataset, int[] trainLabels)
    {
        for (var c = 0; c < dataset.Labels.Count; c++)
        {
            if (!trainLabels.Contains(c))
            {
                throw new DatasetException($"Class \"{dataset.Labels[c]}\" has no training image that decodes; see the skipped images.");
            }
        }
    }

    private static void Info(IProgress<TrainingProgress>? progress, string message) => progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));

    [LoggerMessage(Level = LogLevel.Information, Message = "Training mode {Mode}: {Train} training and {Validation} validation images, {Classes} classes, on {Device}; backbone {Source}")]
    private partial void LogStart(TrainingMode mode, int train, int validation, int classes, DeviceType device, string source);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Backbone {Backbone} has no pretrained weights (random initialisation): fine for tests, useless for transfer learning")]
    private partial void LogRandomBackbone(string backbone);
}
