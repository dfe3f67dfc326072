using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Probe;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>
/// Head mode's fit, the linear probe (<see cref="LinearProbe"/>): the training and validation images are pooled, every image
/// is scored out-of-fold (those predictions are the evidence: validation metrics, confusion matrix, threshold,
/// calibration), and the head is refitted on all of them with the standardisation and the temperature folded into its
/// weights. It takes seconds to minutes and has no epochs, so nothing is checkpointed: a resumed run fits again.
/// </summary>
internal static class ProbeFitter
{
    public static Fitted Fit(HeadPlan plan, ImageClassifier model, IReadOnlyList<string> classes, FeatureCache cache, IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        var count = classes.Count;
        // The splits' arrays read as one set of rows, not concatenated: no second copy of the features.
        var features = new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation);
        int[] labels = [.. cache.TrainLabels, .. cache.ValidationLabels];
        var flipped = cache.TrainFlipped is { } tf && cache.ValidationFlipped is { } vf ? new FeatureRows(cache.NumFeatures, tf, vf) : null;
        var candidates = Candidates(plan.ChooseFeatures, model, cache.NumFeatures, flipped is not null);
        var choice = FeatureChoice.Fit(features, labels, count, flipped, candidates, plan.Folds, plan.Seed, report: message => Info(progress, message), cancellationToken: cancellationToken);
        var fit = choice.Fit;
        var mirrored = choice.Chosen.Flipped;
        Info(progress, string.Create(CultureInfo.InvariantCulture,
            $"Linear probe: {fit.Folds}-fold cross-validation chose L2 {fit.Lambda:G3}; {fit.TemperatureChoice.Describe()} (ECE {fit.EceBefore:P1} -> {fit.EceAfter:P1}); " +
            $"{(fit.ClassWeighted ? "class-weighted loss (largest class over 3x the smallest); " : "")}refitted on all {labels.Length} images ({fit.FinalRows} rows{(mirrored ? " with flipped copies" : "")}) in {fit.Seconds:F1} s."));
        if (choice.Candidates.Count > 1)
        {
            Info(progress, FeatureChoice.Summary(choice));
        }
        ProbeHeads.SetHead(model, fit);
        model.eval();
        var counts = ProbeHeads.Counts(classes, labels);
        return new Fitted
        {
            Judged = new Judged([.. cache.TrainImages, .. cache.ValidationImages], labels, [.. cache.TrainSources, .. cache.ValidationSources], fit.OutOfFoldLogits, Judged.OutOfFold)
            {
                Heads = fit.FoldHeads,
                HeadOf = fit.FoldOf,
            },
            History = [new EpochMetrics(1, fit.FinalTrainLoss, fit.FinalTrainAccuracy, fit.NllAfter, fit.Grid.First(g => g.Lambda == fit.Lambda).Accuracy, 0, fit.Seconds)],
            BestEpoch = 1,
            Temperature = fit.TemperatureChoice,
            Summary = new TrainingSummary
            {
                Mode = "head",
                Epochs = 0,
                MaxEpochs = 0,
                Seed = plan.Seed,
                Optimizer = "lbfgs",
                WeightDecay = fit.Lambda,
                TrainCounts = counts,
                ValidationCounts = counts,
                Probe = ProbeHeads.Summary(fit, labels.Length, mirrored) with
                {
                    Features = choice.Chosen.Stages,
                    FeatureChoices = choice.Candidates,
                    FeaturePrecision = cache.Int8 is null ? "fp32" : "int8",
                },
            },
            Features = cache,
            VerificationInputs = cache.VerificationInputs,
            FeatureParityRelativeDifference = cache.ParityRelativeDifference,
            FeatureSeconds = cache.Seconds,
        };
    }

    /// <summary>
    /// The feature sets the probe is cross-validated on: every pooled stage first (and with mirror images first where they
    /// were computed), then, on a ResNet pooling two or more stages, the last stage alone. One set when the plan fixes them
    /// (<paramref name="choose"/> false). Also a finetune's refit when it kept the start (<see cref="HeadRefit"/>).
    /// </summary>
    internal static List<FeatureSet> Candidates(bool choose, ImageClassifier model, int width, bool flipped)
    {
        var backbone = model.Backbone;
        var architecture = backbone.Architecture;
        var full = architecture is Backbones.ResNetArchitecture
            ? string.Join("+", architecture.StageNames.TakeLast(backbone.PooledStages))
            : $"inputs of {architecture.ReplacedLayer}";
        if (!choose)
        {
            return [new FeatureSet(full, width, flipped)];
        }
        var sets = new List<FeatureSet>();
        foreach (var mirror in flipped ? new[] { true, false } : [false])
        {
            sets.Add(new FeatureSet(full, width, mirror));
        }
        if (architecture is Backbones.ResNetArchitecture resNet && backbone.PooledStages >= 2)
        {
            foreach (var mirror in flipped ? new[] { true, false } : [false])
            {
                sets.Add(new FeatureSet(architecture.StageNames[^1], resNet.StageWidths[^1], mirror));
            }
        }
        return sets;
    }

    private static void Info(IProgress<TrainingProgress>? progress, string message) => progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));
}
