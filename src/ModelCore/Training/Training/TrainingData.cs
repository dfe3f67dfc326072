using System.Diagnostics;
using System.Diagnostics.Metrics;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>
/// The images of a split that decoded, in dataset order, with their label indices: references, not pixels, so it
/// grows by a few bytes per image; the pixels live in one batch at a time (<see cref="TrainingData.LoadAsync{T}"/>).
/// </summary>
internal sealed class LoadedSplit
{
    public List<LabeledImage> Images { get; } = [];
    public List<int> Labels { get; } = [];
    public List<string> Sources { get; } = [];

    public int Count => Images.Count;

    public void Add(LabeledImage image, int label)
    {
        Images.Add(image);
        Labels.Add(label);
        Sources.Add(image.Source);
    }
}

/// <summary>Head mode's cache: pooled backbone features of every image, computed once.</summary>
internal sealed record FeatureCache(float[] Train, int[] TrainLabels, float[] Validation, int[] ValidationLabels, IReadOnlyList<string> ValidationSources, int NumFeatures,
    IReadOnlyList<float[]> VerificationInputs, double ParityRelativeDifference, double Seconds)
{
    public IReadOnlyList<string> TrainSources { get; init; } = [];

    /// <summary>Features of the horizontally flipped training images, in the same order; null when not extracted.</summary>
    public float[]? TrainFlipped { get; init; }

    /// <summary>Features of the horizontally flipped validation images, in the same order; null when not extracted.</summary>
    public float[]? ValidationFlipped { get; init; }
}

/// <summary>Reads and decodes a dataset's images for training (decoding is parallel; results keep dataset order).</summary>
internal sealed class TrainingData(ImageFolderDataset dataset, ImageDecoder decoder, int decodeShorterSide, List<SkippedImage> skipped, IProgress<TrainingProgress>? progress)
{
    /// <summary>The training data path's instruments (<see cref="ImagesInMemory"/>).</summary>
    public static readonly Meter Meter = new("ServerlessClassifier.Training");

    public const int VerificationImages = 8;

    /// <summary>Largest relative difference between ONNX Runtime and TorchSharp features that head mode accepts.</summary>
    public const double FeatureParityTolerance = 1e-4;

    /// <summary>Images whose ONNX features are compared with TorchSharp's before the cache is built.</summary>
    public const int ParityImages = 4;

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
                        into.Add(batch[i], dataset.LabelIndex(batch[i].Label));
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

    /// <summary>
    /// Runs the frozen backbone once over every image on the serving engine (ONNX Runtime, the exported
    /// backbone + current head) and caches the pooled features. Before that, the engine's features on the
    /// first images are compared with TorchSharp's; a relative difference above 1e-4 stops the run.
    /// </summary>
    /// <param name="flip">Also extract the features of every image flipped horizontally (one more backbone pass).</param>
    public async Task<FeatureCache> ExtractFeaturesAsync(ImageClassifier model, ImagePreprocessor preprocessor, int batchSize, CancellationToken cancellationToken, bool flip = false)
    {
        var watch = Stopwatch.StartNew();
        var inputSize = preprocessor.Config.InputSize;
        using var engine = new OnnxEngine(OnnxExport.Export(model, inputSize), new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount });
        var numFeatures = engine.NumFeatures;
        var length = preprocessor.InputLength;
        double? parity = null;
        var verification = new List<float[]>();
        var total = dataset.Train.Count + dataset.Validation.Count;

        // With flip, each item holds the preprocessed image followed by the preprocessed mirror image.
        Func<Image<Rgb24>, float[]> map = flip ? image => [.. preprocessor.Preprocess(image), .. FlippedInput(preprocessor, image)] : preprocessor.Preprocess;

        async Task<(float[] Features, float[]? Flipped, LoadedSplit Split)> RunAsync(IReadOnlyList<LabeledImage> images, int offset, bool keepVerification)
        {
            // Sized for every image at once: a growing List<float> and its final copy held up to three copies
            // of all the features at a time. Images that fail to load leave the end unused (trimmed below).
            var features = new float[(long)images.Count * numFeatures];
            var flippedFeatures = flip ? new float[features.Length] : null;
            var written = 0;
            var split = new LoadedSplit();
            await LoadAsync(images, batchSize, TrainingPhase.Features, offset, total, map, (items, _) =>
            {
                var count = items.Count;
                if (count == 0)
                {
                    return;
                }
                var buffer = new float[count * length];
                var mirrored = flip ? new float[count * length] : null;
                for (var i = 0; i < count; i++)
                {
                    Array.Copy(items[i], 0, buffer, i * length, length);
                    if (mirrored is not null)
                    {
                        Array.Copy(items[i], length, mirrored, i * length, length);
                    }
                }
                var batchFeatures = engine.ExtractFeatures(buffer, count);
                if (mirrored is not null)
                {
                    engine.ExtractFeatures(mirrored, count).CopyTo(flippedFeatures!, written);
                }
                parity ??= CheckParity(model, buffer, batchFeatures, Math.Min(ParityImages, count), inputSize, numFeatures);
                batchFeatures.CopyTo(features, written); // the features are kept; the pixels are not
                written += batchFeatures.Length;
                if (keepVerification)
                {
                    verification.AddRange(items.Take(VerificationImages - verification.Count).Select(item => item.AsSpan(0, length).ToArray()));
                }
            }, split, cancellationToken).ConfigureAwait(false);
            return (Trim(features, written), flippedFeatures is null ? null : Trim(flippedFeatures, written), split);
        }

        var (train, trainFlipped, trainSplit) = await RunAsync(dataset.Train, 0, keepVerification: false).ConfigureAwait(false);
        var (val, valFlipped, valSplit) = await RunAsync(dataset.Validation, dataset.Train.Count, keepVerification: true).ConfigureAwait(false);
        return new FeatureCache(train, [.. trainSplit.Labels], val, [.. valSplit.Labels], valSplit.Sources, numFeatures, verification, parity ?? 0, watch.Elapsed.TotalSeconds)
        {
            TrainSources = trainSplit.Sources,
            TrainFlipped = trainFlipped,
            ValidationFlipped = valFlipped,
        };
    }

    private static float[] Trim(float[] values, int length) => length == values.Length ? values : values.AsSpan(0, length).ToArray();

    /// <summary>The preprocessed input of the image mirrored left to right.</summary>
    internal static float[] FlippedInput(ImagePreprocessor preprocessor, Image<Rgb24> image)
    {
        using var mirror = image.Clone(x => x.Flip(FlipMode.Horizontal));
        return preprocessor.Preprocess(mirror);
    }

    private static double CheckParity(ImageClassifier model, float[] inputs, float[] onnxFeatures, int count, int inputSize, int numFeatures)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var batch = tensor(inputs.AsSpan(0, count * 3 * inputSize * inputSize).ToArray(), [count, 3, inputSize, inputSize]);
        var reference = model.Backbone.call(batch).data<float>().ToArray();
        double scale = 0, worst = 0;
        for (var i = 0; i < count * numFeatures; i++)
        {
            scale = Math.Max(scale, Math.Abs(reference[i]));
            worst = Math.Max(worst, Math.Abs(reference[i] - onnxFeatures[i]));
        }
        var relative = worst / Math.Max(scale, 1e-12);
        if (!(relative <= FeatureParityTolerance))
        {
            throw new TrainingException(
                $"The serving engine's backbone features differ from TorchSharp's: max |difference| {worst:E2} is {relative:E2} of the largest feature, above {FeatureParityTolerance:E0}, on {count} images. " +
                "Head-mode features would not be those the model computes; refusing to train.");
        }
        return relative;
    }

    private void Skip(LabeledImage image, ImageErrorCode code, string message)
    {
        lock (skipped)
        {
            skipped.Add(new SkippedImage(image.Source, code, message));
        }
    }
}
