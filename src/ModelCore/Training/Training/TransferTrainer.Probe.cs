using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Training.Probe;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

public sealed partial class TransferTrainer
{
    /// <summary>True when head mode fits the linear probe instead of running the epoch loop.</summary>
    public static bool UsesLinearProbe(TrainingOptions options) =>
        options.Mode == TrainingMode.Head && options.LinearProbe && options.HeadKind == HeadKind.Linear;

    /// <summary>True when finetune/full starts from a head fitted as a linear probe (LP-FT).</summary>
    public static bool UsesProbeInitialisation(TrainingOptions options) =>
        options.Mode != TrainingMode.Head && options.ProbeInitialisation && options.HeadKind == HeadKind.Linear;

    /// <summary>
    /// LP-FT: the pretrained backbone's pooled features of the TRAINING split (on the serving engine,
    /// parity-checked), a linear probe fitted on them (the validation split stays unseen: it drives
    /// early stopping), and the head set to the probe's weights before any stage is unfrozen.
    /// </summary>
    private static async Task InitialiseHeadFromProbeAsync(ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, ImageDecoder decoder, ImagePreprocessor preprocessor,
        IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        setup.Model.eval();
        // Its own skipped list: the training pass that follows reports the images that do not decode.
        var loader = new TrainingData(dataset, decoder, preprocessor.DecodeShorterSide, [], progress);
        var cache = await loader.ExtractFeaturesAsync(setup.Model, preprocessor, options.FeatureBatchSize, cancellationToken).ConfigureAwait(false);
        var classes = dataset.Labels.Count;
        CheckClasses(dataset, cache.TrainLabels);
        var fit = LinearProbe.Fit(cache.Train, cache.TrainLabels, classes, null, options.ProbeFolds, options.Seed, report: message => Report(progress, message), cancellationToken: cancellationToken);
        SetHead(setup, fit);
        Report(progress, string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"Head initialised from a linear probe on the {cache.TrainLabels.Length} training images' frozen features (L2 {fit.Lambda:G3}, out-of-fold accuracy {fit.Grid.First(g => g.Lambda == fit.Lambda).Accuracy:P1}; {cache.Seconds + fit.Seconds:F1} s), then fine-tuning."));
    }

    /// <summary>
    /// Head mode's linear probe (see <see cref="LinearProbe"/>): the training and validation images are
    /// pooled, every image is scored out-of-fold (those predictions give the validation metrics, the
    /// confusion matrix and the confidence threshold), and the head is refitted on all of them with
    /// the standardisation and the temperature folded into its weights. Takes seconds, so there is no
    /// resume checkpoint: a resumed run simply fits again.
    /// </summary>
    private TrainingResult FitProbe(ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, FeatureCache cache, List<SkippedImage> skipped, IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        var classes = dataset.Labels.Count;
        // The splits' arrays read as one set of rows, not concatenated: no second copy of the features.
        var features = new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation);
        int[] labels = [.. cache.TrainLabels, .. cache.ValidationLabels];
        string[] sources = [.. cache.TrainSources, .. cache.ValidationSources];
        var flipped = cache.TrainFlipped is { } tf && cache.ValidationFlipped is { } vf ? new FeatureRows(cache.NumFeatures, tf, vf) : null;
        var fit = LinearProbe.Fit(features, labels, classes, flipped, options.ProbeFolds, options.Seed, report: message => Report(progress, message), cancellationToken: cancellationToken);
        LogProbe(fit.Folds, fit.Lambda, fit.Temperature, fit.EceBefore, fit.EceAfter, fit.ClassWeighted, fit.FinalRows, fit.Seconds);
        Report(progress, $"Linear probe: {fit.Folds}-fold cross-validation chose L2 {fit.Lambda:G3}; temperature {fit.Temperature:F3} (ECE {fit.EceBefore:P1} -> {fit.EceAfter:P1}); " +
            $"{(fit.ClassWeighted ? "class-weighted loss (largest class over 3x the smallest); " : "")}refitted on all {labels.Length} images ({fit.FinalRows} rows{(flipped is null ? "" : " with flipped copies")}) in {fit.Seconds:F1} s.");

        SetHead(setup, fit);
        setup.Model.eval();

        var predictions = Predictions(dataset, sources, labels, i => [.. fit.OutOfFoldProbabilities.AsSpan(i * classes, classes).ToArray().Select(p => (float)p)]);
        var report = Evaluation.Compute(dataset.Labels, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        var counts = Counts(dataset, labels);
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
            FlipFeatures = flipped is not null,
            Images = labels.Length,
            Rows = fit.FinalRows,
            Iterations = fit.FinalOutcome.Iterations,
            Converged = fit.FinalOutcome.Converged,
            Seconds = fit.Seconds,
        };
        var manifest = Draft(dataset, setup, threshold, skipped,
            new TrainingSummary
            {
                Mode = "head",
                Epochs = 0,
                MaxEpochs = 0,
                ValidationSplit = null,
                Seed = options.Seed,
                Device = "cpu",
                Optimizer = "lbfgs",
                WeightDecay = fit.Lambda,
                TrainCounts = counts,
                ValidationCounts = counts,
                Probe = summary,
            },
            new ValidationMetrics
            {
                Accuracy = report.Accuracy,
                Loss = fit.NllAfter,
                Samples = labels.Length,
                MacroF1 = report.MacroF1,
                ExpectedCalibrationError = fit.EceAfter,
            });
        return new TrainingResult(setup.Model, manifest)
        {
            History = [new EpochMetrics(1, fit.FinalTrainLoss, fit.FinalTrainAccuracy, fit.NllAfter, report.Accuracy, 0, fit.Seconds)],
            BestEpoch = 1,
            StoppedEarly = false,
            ResumedFromEpoch = 0,
            ValidationPredictions = predictions,
            Validation = report,
            ConfidenceThreshold = threshold,
            SkippedImages = skipped,
            MeanImage = setup.MeanImage,
            VerificationInputs = cache.VerificationInputs,
            Device = "cpu",
            FeatureParityRelativeDifference = cache.ParityRelativeDifference,
            FeatureSeconds = cache.Seconds,
        };
    }

    [Microsoft.Extensions.Logging.LoggerMessage(Level = Microsoft.Extensions.Logging.LogLevel.Information, Message = "Linear probe: {Folds}-fold CV chose L2 {Lambda:G3}, temperature {Temperature:F3} (ECE {EceBefore:P1} -> {EceAfter:P1}), class-weighted {Weighted}; refitted on {Rows} rows in {Seconds:F1} s")]
    private partial void LogProbe(int folds, double lambda, double temperature, double eceBefore, double eceAfter, bool weighted, int rows, double seconds);
}
