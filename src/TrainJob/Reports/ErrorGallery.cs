using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Results;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>
/// The report's error gallery: the validation images the model got wrong, most confident first, each as a small JPEG of
/// the model's view (the resized centre crop) with the served model's activation map of the predicted label over it.
/// </summary>
public static class ErrorGallery
{
    /// <summary>At most this many images (each some 5 KB in the page).</summary>
    public const int MaxImages = 12;

    /// <summary>Side of a thumbnail in pixels.</summary>
    public const int ThumbnailSide = 128;

    /// <summary>
    /// The gallery for the wrong <paramref name="predictions"/>, read through <paramref name="images"/> (by source) and
    /// drawn with the packaged model in <paramref name="modelFolder"/>. An image that cannot be read again is left out.
    /// </summary>
    public static async Task<IReadOnlyList<GalleryImage>> BuildAsync(string modelFolder, IReadOnlyList<ValidationPrediction> predictions, IReadOnlyDictionary<string, LabeledImage> images,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(images);
        var wrong = predictions.Where(p => !p.Correct).OrderByDescending(p => p.Confidence).ThenBy(p => p.Source, StringComparer.Ordinal).Take(MaxImages).ToList();
        if (wrong.Count == 0)
        {
            return [];
        }
        var package = await ModelPackage.LoadAsync(modelFolder, cancellationToken);
        using var pipeline = ClassificationPipeline.CreateServing(package);
        var preprocessor = new ImagePreprocessor(package.Manifest.Preprocessing, package.ReadMeanImage());
        var gallery = new List<GalleryImage>();
        foreach (var prediction in wrong)
        {
            if (!images.TryGetValue(prediction.Source, out var image))
            {
                continue;
            }
            PreparedImage prepared;
            try
            {
                prepared = pipeline.Prepare(await image.ReadAsync(cancellationToken));
            }
            catch (Exception e) when (e is ImageRejectedException or IOException or UnauthorizedAccessException or Azure.RequestFailedException)
            {
                continue; // gone or changed since training read it: the report goes on without it
            }
            var map = pipeline.ActivationMapUnavailable is null ? pipeline.Explain(prepared, top: 1, mapLabel: prediction.Predicted).Map : null;
            using var view = map is null ? preprocessor.ToImage(prepared.Input) : map.RenderOverlay(preprocessor, prepared.Input);
            view.Mutate(x => x.Resize(ThumbnailSide, ThumbnailSide));
            using var jpeg = new MemoryStream();
            await view.SaveAsJpegAsync(jpeg, new JpegEncoder { Quality = 80 }, cancellationToken);
            gallery.Add(new GalleryImage(prediction.Source, prediction.Actual, prediction.Predicted, prediction.Confidence, Convert.ToBase64String(jpeg.ToArray()), map is not null));
        }
        return gallery;
    }
}
