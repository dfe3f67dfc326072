using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Probe;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>
/// The probe fits a fine-tune makes besides its epochs: the head's start (LP-FT) on the pretrained backbone's features of
/// the training split, and the refit at the end (<see cref="FinetunePlan.RefitHead"/>) on the kept backbone's features
/// of every image.
/// </summary>
internal static class HeadRefit
{
    /// <summary>
    /// LP-FT: the pretrained backbone's features of the TRAINING split, a linear probe fitted on them (cross-validated L2,
    /// temperature; the validation split stays unseen: it decides the epochs), and the head set to it before any stage trains.
    /// </summary>
    /// <returns>
    /// The pretrained backbone's features of every image (both splits): when the epochs keep the start, the refit's backbone
    /// is this one and <see cref="RefitAsync"/> reuses them instead of running the suffix over every image again.
    /// </returns>
    public static async Task<FeatureCache> StartFromProbeAsync(EpochPlan plan, IReadOnlyList<string> classes, ImageClassifier model, IEpochInputs inputs, IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var cache = await inputs.FeaturesAsync(model, cancellationToken).ConfigureAwait(false);
        var fit = LinearProbe.Fit(cache.Train, cache.TrainLabels, classes.Count, null, plan.Folds, plan.Seed, report: message => Info(progress, message), cancellationToken: cancellationToken);
        ProbeHeads.SetHead(model, fit);
        Info(progress, string.Create(CultureInfo.InvariantCulture,
            $"Head initialised from a linear probe on the {cache.TrainLabels.Length} training images' frozen features (L2 {fit.Lambda:G3} by {fit.Folds}-fold cross-validation, temperature {fit.Temperature:F2}, " +
            $"out-of-fold accuracy {fit.Grid.First(g => g.Lambda == fit.Lambda).Accuracy:P1}, training accuracy {fit.FinalTrainAccuracy:P1}; {watch.Elapsed.TotalSeconds:F1} s); the validation split decides the epochs, the start included."));
        return cache;
    }

    /// <summary>
    /// The head fitted again as head mode fits it, on the kept backbone's features of EVERY image, the validation split
    /// included. The L2 strength, the temperature and the evidence come from the validation images' out-of-fold
    /// predictions only (the backbone never trained on them); when epoch 0 was kept, the backbone is the pretrained one and
    /// every image counts, exactly as in head mode, and the features are chosen as head mode chooses them (layer4 alone
    /// against every pooled stage), so the model served is head mode's.
    /// </summary>
    /// <param name="startFeatures">
    /// The pretrained backbone's features from <see cref="StartFromProbeAsync"/>, or null (a resumed run). Used when the start
    /// was kept: the epochs' best weights are then the start's, restored exactly, so the suffix would compute the same features
    /// again (a pass over every image: about a sixth of an epoch's time).
    /// </param>
    public static async Task<Fitted> RefitAsync(FinetunePlan plan, IReadOnlyList<string> classes, ImageClassifier model, IEpochInputs inputs, Fitted trained,
        FeatureCache? startFeatures, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var reused = trained.BestEpoch == 0 && startFeatures is not null;
        var cache = reused ? startFeatures! : await inputs.FeaturesAsync(model, cancellationToken).ConfigureAwait(false);
        var featureSeconds = watch.Elapsed.TotalSeconds;
        var (trainCount, validationCount) = (cache.TrainLabels.Length, cache.ValidationLabels.Length);
        int[] labels = [.. cache.TrainLabels, .. cache.ValidationLabels];
        string[] sources = [.. cache.TrainSources, .. cache.ValidationSources];
        LabeledImage[] images = [.. cache.TrainImages, .. cache.ValidationImages];
        int[]? scored = trained.BestEpoch == 0 ? null : [.. Enumerable.Range(trainCount, validationCount)];
        var rows = new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation);
        ChosenFeatures? choice = null;
        ProbeFit fit;
        if (scored is null)
        {
            // The start kept: the backbone is the pretrained one, so the refit is head mode's fit, features chosen as head mode
            // chooses them (layer4 alone against layer3+layer4, same folds and criterion): the model served is head mode's.
            choice = FeatureChoice.Fit(rows, labels, classes.Count, null, ProbeFitter.Candidates(choose: true, model, cache.NumFeatures, flipped: false), plan.Folds, plan.Seed,
                report: message => Info(progress, message), cancellationToken: cancellationToken);
            fit = choice.Fit;
            if (choice.Candidates.Count > 1)
            {
                Info(progress, FeatureChoice.Summary(choice));
            }
        }
        else
        {
            fit = LinearProbe.Fit(rows, labels, classes.Count, null, plan.Folds, plan.Seed, scored: scored, report: message => Info(progress, message), cancellationToken: cancellationToken);
        }
        ProbeHeads.SetHead(model, fit);
        model.eval();
        int[] judged = scored ?? [.. Enumerable.Range(0, labels.Length)];
        var evidence = new Judged([.. judged.Select(i => images[i])], [.. judged.Select(i => labels[i])], [.. judged.Select(i => sources[i])],
            ProbeHeads.Rows(fit.OutOfFoldLogits, classes.Count, judged), Judged.OutOfFold)
        {
            Heads = fit.FoldHeads,
            HeadOf = [.. judged.Select(i => fit.FoldOf[i])],
        };
        Info(progress, string.Create(CultureInfo.InvariantCulture,
            $"Head refitted as a linear probe on the kept backbone (epoch {trained.BestEpoch}) over all {labels.Length} images: L2 {fit.Lambda:G3}, {fit.TemperatureChoice.Describe()}, " +
            $"both chosen on the out-of-fold predictions of {(scored is null ? "every image (the backbone is the pretrained one)" : $"the {validationCount} validation images (the backbone never trained on them)")}; " +
            $"{(reused ? "the start's features reused (the kept backbone is the pretrained one)" : $"features {featureSeconds:F1} s")}, {watch.Elapsed.TotalSeconds:F1} s in all."));
        return trained with
        {
            Judged = evidence,
            Temperature = fit.TemperatureChoice,
            Summary = trained.Summary with
            {
                Probe = choice is null
                    ? ProbeHeads.Summary(fit, labels.Length, mirrored: false)
                    : ProbeHeads.Summary(fit, labels.Length, mirrored: false) with { Features = choice.Chosen.Stages, FeatureChoices = choice.Candidates },
                ValidationCounts = ProbeHeads.Counts(classes, evidence.Labels),
            },
            Features = cache,
        };
    }

    private static void Info(IProgress<TrainingProgress>? progress, string message) => progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));
}
