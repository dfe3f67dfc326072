using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>
/// Transfer learning with TorchSharp (the PyTorch recipe): a pretrained ResNet, a new head, and one of
/// three modes. <see cref="TrainingMode.Head"/>: the backbone is frozen, its pooled features computed
/// once on the serving engine and cached, and only the head trains (no augmentation: the features are
/// fixed). <see cref="TrainingMode.Finetune"/>: the last stages train too, at a smaller rate, with
/// random-resized-crop and flip augmentation. <see cref="TrainingMode.Full"/>: everything trains with
/// discriminative rates. AdamW or SGD, a cosine schedule over the epochs, early stopping on validation
/// loss (the best epoch's weights are kept), and a resume checkpoint after every epoch. Same seed, data
/// and device give the same model.
/// </summary>
public sealed partial class TransferTrainer(ILogger<TransferTrainer>? logger = null)
{
    private readonly ILogger logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>
    /// Head mode: where the frozen backbone's features are kept between runs (null: computed every run). Images read
    /// from blob storage whose version has stored features are read instead of decoded, the rest are computed and
    /// added. Not with <see cref="TrainingOptions.FlipFeatures"/> (mirrored features are not stored).
    /// </summary>
    public FeatureStore? FeatureStore { get; init; }

    /// <summary>
    /// With <see cref="FeatureStore"/>: has the features the store lacks computed elsewhere first (the Functions app's
    /// features shards); the run then reads them and computes only what is still missing.
    /// </summary>
    public FeatureFanOut? FeatureFanOut { get; init; }

    /// <summary>Trains on <paramref name="dataset"/> and returns the best epoch's model.</summary>
    /// <param name="checkpointDirectory">Where resume checkpoints go after each epoch; null: none.</param>
    /// <param name="resume">Continue from the checkpoint in <paramref name="checkpointDirectory"/> (a fresh start when there is none); refused if it was made with other options or data.</param>
    /// <exception cref="TrainingException">The checkpoint does not match, or the serving engine's features disagree with TorchSharp's.</exception>
    /// <exception cref="OperationCanceledException">Cancelled; the last completed epoch's checkpoint is intact.</exception>
    public Task<TrainingResult> TrainAsync(
        ImageFolderDataset dataset, TrainingOptions options, IProgress<TrainingProgress>? progress, string? checkpointDirectory,
        bool resume = false, CancellationToken cancellationToken = default)
    {
        // Before the async body is compiled: the JIT may run TorchSharp's static constructor when it compiles
        // a method that reads torch's statics (seen when ResolveDevice was inlined), and that must not happen
        // before the natives are loaded.
        TorchRuntime.EnsureInitialized();
        return TrainCoreAsync(dataset, options, progress, checkpointDirectory, resume, cancellationToken);
    }

    private async Task<TrainingResult> TrainCoreAsync(
        ImageFolderDataset dataset, TrainingOptions options, IProgress<TrainingProgress>? progress, string? checkpointDirectory,
        bool resume, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(dataset);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (!dataset.ExplicitSplit && (dataset.Options.Seed != options.Seed || dataset.Options.ValSplit != options.ValSplit))
        {
            throw new ArgumentException(
                $"The dataset was split with seed {dataset.Options.Seed} and ValSplit {dataset.Options.ValSplit}, the options say {options.Seed} and {options.ValSplit}; load it with options.ToDatasetOptions().", nameof(dataset));
        }
        if (FeatureStore is not null && (options.Mode != TrainingMode.Head || (UsesLinearProbe(options) && options.FlipFeatures)))
        {
            throw new ArgumentException(
                options.Mode != TrainingMode.Head ? "A feature store serves head mode only (finetune and full train the backbone, so its features change)." : "A feature store holds no mirrored-image features: FlipFeatures needs them computed.",
                nameof(options));
        }
        if (resume && checkpointDirectory is null)
        {
            throw new ArgumentException("Resuming needs the checkpoint directory.", nameof(checkpointDirectory));
        }
        TorchRuntime.EnsureInitialized();
        var device = ResolveDevice(options.Device);
        var setup = CreateModel(options, dataset.Labels.Count);
        var model = setup.Model;
        try
        {
            ResumeState? state = null;
            if (resume)
            {
                state = ResumeCheckpoint.Read(checkpointDirectory!);
                if (state is null)
                {
                    Report(progress, $"No resume checkpoint in {checkpointDirectory}; starting from epoch 1.");
                }
                else if (state.OptionsHash != options.Hash() || state.DataHash != dataset.DataHash)
                {
                    throw new TrainingException(
                        $"The checkpoint in {checkpointDirectory} was made with different {(state.OptionsHash != options.Hash() ? "training options" : "data")} " +
                        $"(it has {state.CompletedEpochs} epoch(s)); resume with the same options and data, or start without resume (or in another directory).");
                }
            }

            var skipped = new List<SkippedImage>(dataset.Skipped);
            var decoder = new ImageDecoder(dataset.Options.Limits);
            var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
            // Decode as serving does (large JPEGs at reduced scale), so training sees what serving sees.
            var loader = new TrainingData(dataset, decoder, preprocessor.DecodeShorterSide, skipped, progress);
            LogStart(options.Mode, dataset.Train.Count, dataset.Validation.Count, dataset.Labels.Count, device.type, setup.BackboneSource);

            TrainingResult result;
            if (options.Mode == TrainingMode.Head)
            {
                // Frozen means frozen: no gradients AND eval mode, so BatchNorm uses (and never updates)
                // its running statistics; the cached features are exactly what the model computes.
                model.eval();
                var probe = UsesLinearProbe(options);
                var stored = FeatureStore is null ? null
                    : new StoredFeatures(FeatureStore, FeatureKey.Compute(model, setup.Preprocessing, setup.MeanImage, preprocessor.DecodeShorterSide), model.Backbone.NumFeatures)
                    {
                        FanOut = FeatureFanOut,
                        MeanImage = setup.MeanImage,
                    };
                var cache = await loader.ExtractFeaturesAsync(model, preprocessor, options.FeatureBatchSize, cancellationToken, flip: probe && options.FlipFeatures, stored).ConfigureAwait(false);
                if (stored is not null)
                {
                    Report(progress, $"Feature store '{stored.Store.Container.Name}', key {stored.Key}: {cache.FromStore} of {cache.FromStore + cache.Computed} images read from {stored.FilesRead} file(s), " +
                        $"{cache.Computed} computed, {stored.Written} written{(FeatureFanOut is null ? "" : $"; {stored.FannedOut} fanned out")}.");
                }
                var imagesPerSecond = (cache.TrainLabels.Length + cache.ValidationLabels.Length) / Math.Max(cache.Seconds, 1e-9);
                LogFeatures(cache.TrainLabels.Length + cache.ValidationLabels.Length, cache.Seconds, imagesPerSecond, cache.ParityRelativeDifference);
                Report(progress, $"Features of {cache.TrainLabels.Length + cache.ValidationLabels.Length} images in {cache.Seconds:F1} s ({imagesPerSecond:F1} images/s); ONNX vs TorchSharp relative difference {cache.ParityRelativeDifference:E1}. Backbone frozen (eval mode: BatchNorm statistics frozen); no augmentation in head mode.");
                CheckClasses(dataset, cache.TrainLabels);
                if (probe)
                {
                    return WithOutOfDistribution(FitProbe(dataset, options, setup, cache, skipped, progress, cancellationToken), cache, dataset.Labels.Count, options.Seed, progress);
                }
                using var data = new FeatureBatches(cache, device);
                result = Run(dataset, options, setup, device, data, state, checkpointDirectory, skipped, progress, cancellationToken);
                result = WithOutOfDistribution(With(result, cache), cache, dataset.Labels.Count, options.Seed, progress);
            }
            else if (CachedPrefixStages(model, options) is { } stages)
            {
                var augmentation = new Augmentation(setup.Preprocessing, setup.MeanImage, options.CropScaleMin, options.MirrorAugmentation);
                var data = await CachePrefixAsync(dataset, options, setup, stages, loader, preprocessor, augmentation, device, progress, cancellationToken).ConfigureAwait(false);
                var resnet = (Backbones.TorchVisionResNet)model.Backbone;
                try
                {
                    CheckClasses(dataset, data.TrainLabels);
                    // The model now takes prefix outputs: forward runs only the stages from `stages` on.
                    resnet.InputStage = stages;
                    if (state is null && UsesProbeInitialisation(options))
                    {
                        InitialiseHeadFromCachedProbe(dataset, options, setup, data, progress, cancellationToken);
                    }
                    result = Run(dataset, options, setup, device, data, state, checkpointDirectory, skipped, progress, cancellationToken);
                    if (UsesHeadRefit(options))
                    {
                        result = RefitHead(dataset, options, setup, data, result, progress, cancellationToken);
                    }
                }
                finally
                {
                    resnet.InputStage = 0;
                    data.Dispose();
                }
            }
            else
            {
                if (state is null && UsesProbeInitialisation(options))
                {
                    await InitialiseHeadFromProbeAsync(dataset, options, setup, decoder, preprocessor, progress, cancellationToken).ConfigureAwait(false);
                }
                var augmentation = new Augmentation(setup.Preprocessing, setup.MeanImage, options.CropScaleMin, options.MirrorAugmentation);
                // A first pass finds the images that decode (and keeps a few validation inputs for the export's check);
                // the batches decode them again when they are used, so no image stays in memory.
                var train = new LoadedSplit();
                var validation = new LoadedSplit();
                var verification = new List<float[]>();
                var total = dataset.Train.Count + dataset.Validation.Count;
                await loader.LoadAsync(dataset.Train, options.FeatureBatchSize, TrainingPhase.Loading, 0, total, image => Augmentation.WorkingImage(image, setup.Preprocessing), (_, _) => { }, train, cancellationToken).ConfigureAwait(false);
                await loader.LoadAsync(dataset.Validation, options.FeatureBatchSize, TrainingPhase.Loading, dataset.Train.Count, total, preprocessor.Preprocess,
                    (items, _) => verification.AddRange(items.Take(TrainingData.VerificationImages - verification.Count)), validation, cancellationToken).ConfigureAwait(false);
                CheckClasses(dataset, [.. train.Labels]);
                using (var data = new ImageBatches(loader, train, validation, verification, augmentation, preprocessor, device, cancellationToken))
                {
                    result = Run(dataset, options, setup, device, data, state, checkpointDirectory, skipped, progress, cancellationToken);
                }
                result = await WithOutOfDistributionAsync(result, dataset, options, decoder, preprocessor, progress, cancellationToken).ConfigureAwait(false);
            }
            return result;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    private static TrainingResult With(TrainingResult result, FeatureCache cache) => new(result.Model, result.Manifest)
    {
        History = result.History,
        BestEpoch = result.BestEpoch,
        StoppedEarly = result.StoppedEarly,
        ResumedFromEpoch = result.ResumedFromEpoch,
        ValidationPredictions = result.ValidationPredictions,
        Validation = result.Validation,
        ConfidenceThreshold = result.ConfidenceThreshold,
        SkippedImages = result.SkippedImages,
        MeanImage = result.MeanImage,
        VerificationInputs = cache.VerificationInputs,
        Device = result.Device,
        FeatureParityRelativeDifference = cache.ParityRelativeDifference,
        FeatureSeconds = cache.Seconds,
    };

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

    private static void Report(IProgress<TrainingProgress>? progress, string message) =>
        progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));

    [LoggerMessage(Level = LogLevel.Information, Message = "Training mode {Mode}: {Train} training and {Validation} validation images, {Classes} classes, on {Device}; backbone {Source}")]
    private partial void LogStart(TrainingMode mode, int train, int validation, int classes, DeviceType device, string source);

    [LoggerMessage(Level = LogLevel.Information, Message = "Cached the frozen backbone's features of {Images} images in {Seconds:F1} s ({Rate:F1} images/s); ONNX Runtime vs TorchSharp relative difference {Parity:E1}")]
    private partial void LogFeatures(int images, double seconds, double rate, double parity);

    [LoggerMessage(Level = LogLevel.Information, Message = "Epoch {Epoch}/{Epochs}: train loss {TrainLoss:F4} acc {TrainAccuracy:P1}, val loss {ValLoss:F4} acc {ValAccuracy:P1}, lr {LearningRate:E2}, {Seconds:F2} s, {ImagesPerSecond:F1} training images/s")]
    private partial void LogEpoch(int epoch, int epochs, double trainLoss, double trainAccuracy, double valLoss, double valAccuracy, double learningRate, double seconds, double imagesPerSecond);

    [LoggerMessage(Level = LogLevel.Information, Message = "Early stopping after epoch {Epoch}: no lower validation loss for {Patience} epochs; keeping epoch {BestEpoch}")]
    private partial void LogEarlyStop(int epoch, int patience, int bestEpoch);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Backbone {Backbone} has no pretrained weights (random initialisation): fine for tests, useless for transfer learning")]
    private partial void LogRandomBackbone(string backbone);
}
