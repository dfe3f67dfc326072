using System.Globalization;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// Head mode's inputs: the frozen backbone's features of every image, computed once on the serving engine (parity-checked)
/// or read from the feature store. The backbone never changes in head mode, so these are also the final model's features.
/// </summary>
internal sealed class FeatureInputs(FeatureCache cache) : ITrainingInputs
{
    public FeatureCache Cache => cache;

    public int[] TrainLabels => cache.TrainLabels;

    public Task<FeatureCache> FeaturesAsync(ImageClassifier model, CancellationToken cancellationToken) => Task.FromResult(cache);

    public void Dispose()
    {
    }

    /// <summary>
    /// Frozen means frozen: the model in eval mode, so BatchNorm uses (and never updates) its running statistics and the
    /// features are exactly what the model computes. With a store, stored features are read and only the rest computed.
    /// </summary>
    /// <param name="mirrored">Also the features of every image mirrored left to right (one more backbone pass).</param>
    /// <param name="calibration">The int8 step's calibration sample and quantiser settings: their statistics are collected on the way (<see cref="FeaturePassCalibration"/>).</param>
    /// <param name="int8Features">Extract the features with the int8 backbone (<see cref="PrecisionOptions.Int8Features"/>), when <paramref name="calibration"/> is given and no store.</param>
    /// <param name="collected">A calibration already collected (the fallback to fp32 features): kept, not collected again.</param>
    public static async Task<FeatureInputs> PrepareAsync(ImageClassifier model, ImagePreprocessor preprocessor, float[]? meanImage, ImageLoader loader, int batchSize, bool mirrored,
        FeatureStore? store, FeatureFanOut? fanOut, CancellationToken cancellationToken, (IReadOnlyList<LabeledImage> Sample, Int8QuantizerOptions Options)? calibration = null,
        bool int8Features = false, FeaturePassCalibration? collected = null)
    {
        model.eval();
        var stored = store is null ? null
            : new StoredFeatures(store, FeatureKey.Compute(model, preprocessor.Config, meanImage, preprocessor.DecodeShorterSide), model.Backbone.NumFeatures)
            {
                FanOut = fanOut,
                MeanImage = meanImage,
            };
        var cache = await new FeatureExtraction(loader).ExtractFeaturesAsync(model, preprocessor, batchSize, cancellationToken, flip: mirrored, stored, calibration, int8Features,
            collected).ConfigureAwait(false);
        var progress = loader.Progress;
        if (stored is not null)
        {
            Info(progress, $"Feature store '{stored.Store.Container.Name}', key {stored.Key}: {cache.FromStore} of {cache.FromStore + cache.Computed} images read from {stored.FilesRead} file(s), " +
                $"{cache.Computed} computed, {stored.Written} written{(fanOut is null ? "" : $"; {stored.FannedOut} fanned out")}.");
        }
        var images = cache.TrainLabels.Length + cache.ValidationLabels.Length;
        Info(progress, string.Create(CultureInfo.InvariantCulture,
            $"Features of {images} images in {cache.Seconds:F1} s ({images / Math.Max(cache.Seconds, 1e-9):F1} images/s); ONNX vs TorchSharp relative difference {cache.ParityRelativeDifference:E1}. Backbone frozen (eval mode: BatchNorm statistics frozen); no augmentation in head mode."));
        if (cache.Int8 is { } int8)
        {
            Info(progress, string.Create(CultureInfo.InvariantCulture,
                $"int8 features: {int8.Sample.Count} calibration images went first through the calibration graph ({cache.Calibration!.Seconds:F1} s; their fp32 features kept for the int8 check), " +
                $"the backbone was quantised with their ranges ({int8.QuantizeSeconds:F1} s; {int8.Scheme}), and every image's features are the int8 backbone's: the head is fitted on what the int8 graph serves."));
        }
        else if (collected is null && cache.Calibration is { } calibrated)
        {
            Info(progress, string.Create(CultureInfo.InvariantCulture,
                $"int8 calibration: {calibrated.Images} of the training images went through the calibration graph instead of the serving graph ({calibrated.Seconds:F1} s), their activation statistics kept for the int8 step."));
        }
        return new FeatureInputs(cache);
    }

    private static void Info(IProgress<TrainingProgress>? progress, string message) => progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));
}
