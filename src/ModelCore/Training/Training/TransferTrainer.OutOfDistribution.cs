using System.Globalization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Training.OutOfDistribution;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The out-of-distribution statistics of a run: fitted to the features the trained model computes for its labelled images.</summary>
public sealed partial class TransferTrainer
{
    /// <summary>
    /// Finetune and full: the trained model's features of every labelled image (one more pass over the images, on
    /// the serving engine, parity-checked like head mode's cache), then <see cref="WithOutOfDistribution"/>.
    /// </summary>
    private static async Task<TrainingResult> WithOutOfDistributionAsync(TrainingResult result, ImageFolderDataset dataset, TrainingOptions options, ImageDecoder decoder,
        ImagePreprocessor preprocessor, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        result.Model.eval();
        // Its own skipped list: the training pass already reported the images that do not decode.
        var loader = new TrainingData(dataset, decoder, preprocessor.DecodeShorterSide, [], progress);
        var cache = await loader.ExtractFeaturesAsync(result.Model, preprocessor, options.FeatureBatchSize, cancellationToken).ConfigureAwait(false);
        return WithOutOfDistribution(result, cache, dataset.Labels.Count, options.Seed, progress);
    }

    /// <summary>
    /// Fits <see cref="FeatureStatisticsFit"/> to the cached features of every labelled image (training and
    /// validation split), records the section in the manifest with the validation confidences' quantiles, and
    /// keeps the statistics for the model folder.
    /// </summary>
    private static TrainingResult WithOutOfDistribution(TrainingResult result, FeatureCache cache, int classes, int seed, IProgress<TrainingProgress>? progress)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var fit = FeatureStatisticsFit.Fit(new FeatureRows(cache.NumFeatures, cache.Train, cache.Validation), [.. cache.TrainLabels, .. cache.ValidationLabels], classes, seed);
        var confidences = result.ValidationPredictions.Select(p => p.Confidence).ToArray();
        result.OutOfDistribution = fit.Statistics;
        result.Manifest = result.Manifest with
        {
            OutOfDistribution = fit.Spec,
            Metrics = (result.Manifest.Metrics ?? new()) with
            {
                ConfidenceQuantiles = confidences.Length == 0 ? null : [.. Enumerable.Range(0, 21).Select(q => Math.Round(FeatureStatisticsFit.Quantile(confidences, q / 20.0), 4))],
            },
        };
        Report(progress, string.Create(CultureInfo.InvariantCulture,
            $"Out-of-distribution statistics: {classes} class means and {fit.Spec.Components} covariance components of {fit.Spec.Features} features from {fit.Spec.Images} images; " +
            $"cut-off distance {fit.Spec.Cutoff:F2} ({fit.Spec.ExceedShare:P0} of the images lie beyond it, {(fit.Spec.Folds > 0 ? $"each scored out-of-fold ({fit.Spec.Folds} folds)" : "scored in-sample: too few images for folds")}) in {clock.Elapsed.TotalSeconds:F1} s."));
        return result;
    }
}
