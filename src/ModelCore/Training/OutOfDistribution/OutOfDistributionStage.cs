using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.OutOfDistribution;

/// <summary>
/// The out-of-distribution stage every plan goes through: <see cref="FeatureStatisticsFit"/> fitted to the final model's
/// features of every labelled image (training and validation split), the manifest's <c>outOfDistribution</c> section
/// and the statistics file it names, and the calibrated confidences' quantiles (what <c>monitor</c> compares uploads with).
/// </summary>
internal static class OutOfDistributionStage
{
    public static (FittedFeatureStatistics Fit, IReadOnlyList<double>? ConfidenceQuantiles) Fit(FeatureCache features, int classes, int seed, IReadOnlyList<double> confidences,
        IProgress<TrainingProgress>? progress)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fit = FeatureStatisticsFit.Fit(new FeatureRows(features.NumFeatures, features.Train, features.Validation), [.. features.TrainLabels, .. features.ValidationLabels], classes, seed);
        var spec = fit.Spec;
        progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, string.Create(CultureInfo.InvariantCulture,
            $"Out-of-distribution statistics: {classes} class means and {spec.Components} covariance components of {spec.Features} features from {spec.Images} images; " +
            $"cut-off distance {spec.Cutoff:F2} ({spec.ExceedShare:P0} of the images lie beyond it, {(spec.Folds > 0 ? $"each scored out-of-fold ({spec.Folds} folds)" : "scored in-sample: too few images for folds")}) in {clock.Elapsed.TotalSeconds:F1} s.")));
        IReadOnlyList<double>? quantiles = confidences.Count == 0 ? null : [.. Enumerable.Range(0, 21).Select(q => Math.Round(FeatureStatisticsFit.Quantile(confidences, q / 20.0), 4))];
        return (fit, quantiles);
    }
}
