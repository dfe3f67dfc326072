using System.Diagnostics.Metrics;
using Azure;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>Reads and decodes a dataset's images for training (decoding is parallel; results keep dataset order).</summary>
internal sealed class ImageLoader(ImageFolderDataset dataset, ImageDecoder decoder, int decodeShorterSide, List<SkippedImage> skipped, IProgress<TrainingProgress>? progress)
{
    public ImageFolderDataset Dataset => dataset;

    public ImageDecoder Decoder => decoder;

    /// <summary>The shorter side large JPEGs are decoded at (reduced scale, as serving decodes them).</summary>
    public int DecodeShorterSide => decodeShorterSide;

    /// <summary>Where progress goes.</summary>
    public IProgress<TrainingProgress>? Progress => progress;

    /// <summary>The training data path's instruments (<see cref="ImagesInMemory"/>).</summary>
    public static readonly Meter Meter = new("ServerlessClassifier.Training");

    public const int VerificationImages = 8;

    /// <summary>
    /// Decoded images, or copies made from them (working images, preprocessed inputs), that the training data path
    /// holds at a moment: at most a batch, whatever the data set's size (a test watches it with a MeterListener).
    /// </summary>
    internal static readonly UpDownCounter<int> ImagesInMemory = Meter.CreateUpDownCounter<int>("training.images_in_memory", "{image}",
        "Decoded or preprocessed images the training data path holds");

    /// <summary>
    /// Decodes images a batch at a time (in parallel; results keep dataset order), maps each decoded image with
    /// <paramref name="map"/> and hands the batch to <paramref name="onBatch"/> with the index in <paramref name="into"/>
    /// of its first image. The batch is dropped (disposed where disposable) when onBatch returns, so memory holds one
    /// batch whatever the data set's size; <paramref name="into"/> keeps which images decoded. Images that fail (read
    /// error or <see cref="ImageRejectedException"/>) are skipped and listed.
    /// </summary>
    public async Task LoadAsync<T>(IReadOnlyList<LabeledImage> images, int batchSize, TrainingPhase phase, int offset, int total,
        Func<Image<Rgb24>, T> map, Action<IReadOnlyList<T>, int> onBatch, LoadedSplit into, CancellationToken cancellationToken)
        where T : class
    {
        for (var start = 0; start < images.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = images.Skip(start).Take(batchSize).ToList();
            var bytes = new byte[batch.Count][];
            for (var i = 0; i < batch.Count; i++)
            {
                try
                {
                    bytes[i] = await batch[i].ReadAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (RequestFailedException e) when (e.Status == 404)
                {
                    bytes[i] = [];
                    Skip(batch[i], SkipCodes.Missing, "is listed but does not exist"); // deleted since the listing (datasets built without the content check)
                }
                catch (IOException e)
                {
                    bytes[i] = [];
                    Skip(batch[i], ImageErrorCode.Corrupt, $"could not be read: {e.Message}");
                }
            }
            var results = new T?[batch.Count];
            var errors = new ImageRejectedException?[batch.Count];
            try
            {
                Parallel.For(0, batch.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
                {
                    if (bytes[i].Length == 0)
                    {
                        return;
                    }
                    try
                    {
                        using var image = decoder.Decode(bytes[i], decodeShorterSide);
                        results[i] = map(image);
                    }
                    catch (ImageRejectedException e)
                    {
                        errors[i] = e;
                    }
                });
                var first = into.Count;
                var items = new List<T>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                {
                    if (errors[i] is { } error)
                    {
                        Skip(batch[i], error.Code, error.Message);
                    }
                    else if (results[i] is { } result)
                    {
                        items.Add(result);
                        into.Add(batch[i], dataset.ClassIndexOf(batch[i]));
                    }
                }
                ImagesInMemory.Add(items.Count);
                try
                {
                    onBatch(items, first);
                }
                finally
                {
                    ImagesInMemory.Add(-items.Count);
                }
            }
            finally
            {
                foreach (var result in results)
                {
                    (result as IDisposable)?.Dispose();
                }
            }
            progress?.Report(new TrainingProgress(phase, offset + start + batch.Count, total));
        }
    }

    /// <summary>
    /// Decodes images that decoded before (an epoch's batch) again, in parallel, and passes each to
    /// <paramref name="use"/> with its position; the decoded image is disposed when use returns. Synchronous
    /// (the epoch loop is): reads wait for ReadAsync, which in a process without a synchronisation context
    /// (the CLI, the tests) cannot deadlock.
    /// </summary>
    /// <exception cref="TrainingException">An image that decoded in the first pass no longer reads or decodes.</exception>
    public void Stream(IReadOnlyList<LabeledImage> images, Action<int, Image<Rgb24>> use, CancellationToken cancellationToken) =>
        // At most one image per core at a time: threads blocked on reads must not add decoded images.
        Parallel.For(0, images.Count, new ParallelOptions { CancellationToken = cancellationToken, MaxDegreeOfParallelism = Environment.ProcessorCount }, i =>
        {
            Image<Rgb24> image;
            try
            {
                image = decoder.Decode(images[i].ReadAsync(cancellationToken).GetAwaiter().GetResult(), decodeShorterSide);
            }
            catch (Exception e) when (e is IOException or ImageRejectedException)
            {
                throw new TrainingException($"Image {images[i].Source} decoded when training started but not now ({e.Message}); was it changed during training?");
            }
            ImagesInMemory.Add(1);
            try
            {
                use(i, image);
            }
            finally
            {
                image.Dispose();
                ImagesInMemory.Add(-1);
            }
        });

    internal void Skip(LabeledImage image, ImageErrorCode code, string message) => Skip(image, code.ToString(), message);

    private void Skip(LabeledImage image, string code, string message)
    {
        lock (skipped)
        {
            skipped.Add(new SkippedImage(image.Source, code, message));
        }
    }
}
