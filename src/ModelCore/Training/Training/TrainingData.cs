using System.Diagnostics;
using System.Diagnostics.Metrics;
using Azure;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Features;
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

    /// <summary>Images whose features were read from the feature store.</summary>
    public int FromStore { get; init; }

    /// <summary>Images the backbone ran on (those without stored features, including any that then failed to load).</summary>
    public int Computed { get; init; }
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
    /// first images are compared with TorchSharp's; a relative difference above 1e-4 stops the run. With
    /// <paramref name="stored"/>, the images whose blob and version have stored features are read, not computed
    /// (the first of them are decoded and checked against TorchSharp with the same tolerance), and the features
    /// computed are written to the store.
    /// </summary>
    /// <param name="flip">Also extract the features of every image flipped horizontally (one more backbone pass); not with <paramref name="stored"/>.</param>
    public async Task<FeatureCache> ExtractFeaturesAsync(
        ImageClassifier model, ImagePreprocessor preprocessor, int batchSize, CancellationToken cancellationToken, bool flip = false, StoredFeatures? stored = null)
    {
        if (flip && stored is not null)
        {
            throw new ArgumentException("Stored features are of the images as they are; the mirrored images' features are not stored, so flip cannot read them.", nameof(flip));
        }
        var watch = Stopwatch.StartNew();
        var inputSize = preprocessor.Config.InputSize;
        var graph = OnnxExport.Export(model, inputSize);
        using var engine = new OnnxEngine(graph, new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount });
        var numFeatures = engine.NumFeatures;
        var length = preprocessor.InputLength;
        double? parity = null;
        var verification = new List<float[]>();
        var train = new SplitFeatures(dataset.Train, numFeatures, flip);
        var validation = new SplitFeatures(dataset.Validation, numFeatures, flip);
        if (stored is not null)
        {
            await ReadStoredAsync(stored, [train, validation], cancellationToken).ConfigureAwait(false);
            var wanted = train.Missing.Concat(validation.Missing).Select(i => i.Identity).OfType<FeatureImage>().ToList();
            if (stored.FanOut is { } fanOut && wanted.Count > 0)
            {
                stored.FannedOut = wanted.Count;
                await fanOut(new FeatureExtractor(graph, preprocessor.Config, stored.MeanImage), stored.Key, wanted, cancellationToken).ConfigureAwait(false);
                await ReadStoredAsync(stored, [train, validation], cancellationToken).ConfigureAwait(false);
            }
        }
        var total = train.Missing.Count + validation.Missing.Count;

        // With flip, each item holds the preprocessed image followed by the preprocessed mirror image.
        Func<Image<Rgb24>, float[]> map = flip ? image => [.. preprocessor.Preprocess(image), .. FlippedInput(preprocessor, image)] : preprocessor.Preprocess;

        async Task ComputeAsync(SplitFeatures split, int offset, bool keepVerification)
        {
            var loaded = new LoadedSplit();
            await LoadAsync(split.Missing, batchSize, TrainingPhase.Features, offset, total, map, (items, first) =>
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
                var mirroredFeatures = mirrored is null ? null : engine.ExtractFeatures(mirrored, count);
                parity ??= CheckParity(model, buffer, batchFeatures, Math.Min(ParityImages, count), inputSize, numFeatures);
                for (var i = 0; i < count; i++)
                {
                    var image = loaded.Images[first + i];
                    var row = batchFeatures.AsSpan(i * numFeatures, numFeatures);
                    split.Set(image, row, mirroredFeatures is null ? default : mirroredFeatures.AsSpan(i * numFeatures, numFeatures)); // the features are kept; the pixels are not
                    if (stored is not null && image.Identity is { } identity)
                    {
                        stored.Add(identity, row, cancellationToken);
                    }
                }
                if (keepVerification)
                {
                    verification.AddRange(items.Take(VerificationImages - verification.Count).Select(item => item.AsSpan(0, length).ToArray()));
                }
            }, loaded, cancellationToken).ConfigureAwait(false);
        }

        await ComputeAsync(train, 0, keepVerification: false).ConfigureAwait(false);
        await ComputeAsync(validation, train.Missing.Count, keepVerification: true).ConfigureAwait(false);
        if (stored is not null)
        {
            await stored.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (stored.Read > 0)
            {
                var storedParity = await CheckStoredAsync(model, preprocessor, stored, validation, train, verification, cancellationToken).ConfigureAwait(false);
                parity = Math.Max(parity ?? 0, storedParity);
            }
        }
        var (trainFeatures, trainFlipped, trainSplit) = train.Complete(dataset);
        var (validationFeatures, validationFlipped, validationSplit) = validation.Complete(dataset);
        return new FeatureCache(trainFeatures, [.. trainSplit.Labels], validationFeatures, [.. validationSplit.Labels], validationSplit.Sources, numFeatures, verification, parity ?? 0, watch.Elapsed.TotalSeconds)
        {
            TrainSources = trainSplit.Sources,
            TrainFlipped = trainFlipped,
            ValidationFlipped = validationFlipped,
            FromStore = stored?.Read ?? 0,
            Computed = total,
        };
    }

    /// <summary>Fills the splits' rows from the store where an image's blob has features of its listed version.</summary>
    private static async Task ReadStoredAsync(StoredFeatures stored, SplitFeatures[] splits, CancellationToken cancellationToken)
    {
        var slots = new Dictionary<string, (SplitFeatures Split, int Index)>(StringComparer.Ordinal);
        foreach (var split in splits)
        {
            for (var i = 0; i < split.Images.Count; i++)
            {
                if (split.Images[i].Identity is { } identity)
                {
                    slots.TryAdd(identity.Name, (split, i));
                }
            }
        }
        await stored.ReadAsync(image => slots.TryGetValue(image.Name, out var slot) && slot.Split.Images[slot.Index].Identity!.Version == image.Version
            ? slot.Split.Store(slot.Index)
            : (Memory<float>?)null, cancellationToken).ConfigureAwait(false);
        foreach (var split in splits)
        {
            split.CollectMissing();
        }
    }

    /// <summary>
    /// Decodes the first stored images (validation first) and compares TorchSharp's features of them with the stored
    /// ones (a stale or foreign file would differ); their inputs also complete the export's verification inputs.
    /// Returns the relative difference.
    /// </summary>
    private async Task<double> CheckStoredAsync(ImageClassifier model, ImagePreprocessor preprocessor, StoredFeatures stored,
        SplitFeatures validation, SplitFeatures train, List<float[]> verification, CancellationToken cancellationToken)
    {
        var chosen = validation.StoredIndices().Select(i => (Split: validation, Index: i, Validation: true))
            .Concat(train.StoredIndices().Select(i => (Split: train, Index: i, Validation: false)))
            .Take(VerificationImages).ToList();
        var numFeatures = validation.NumFeatures;
        var inputs = new float[chosen.Count * preprocessor.InputLength];
        var expected = new float[chosen.Count * numFeatures];
        for (var k = 0; k < chosen.Count; k++)
        {
            var (split, index, isValidation) = chosen[k];
            var image = split.Images[index];
            float[] input;
            try
            {
                using var decoded = decoder.Decode(await image.ReadAsync(cancellationToken).ConfigureAwait(false), decodeShorterSide);
                input = preprocessor.Preprocess(decoded);
            }
            catch (Exception e) when (e is IOException or ImageRejectedException or RequestFailedException)
            {
                throw new TrainingException($"Image {image.Source} has stored features but could not be read or decoded to check them ({e.Message}); was it changed during training?");
            }
            input.CopyTo(inputs, k * input.Length);
            split.Row(index).CopyTo(expected.AsSpan(k * numFeatures));
            if (isValidation && verification.Count < VerificationImages)
            {
                verification.Add(input);
            }
        }
        var (relative, worst) = RelativeDifference(model, inputs, expected, chosen.Count, preprocessor.Config.InputSize, numFeatures);
        if (!(relative <= FeatureParityTolerance))
        {
            throw new TrainingException(
                $"The stored features of key {stored.Key} differ from what the backbone computes now: max |difference| {worst:E2} is {relative:E2} of the largest feature, above {FeatureParityTolerance:E0}, " +
                $"on {chosen.Count} images. Refusing to train on them; delete the folder {stored.Key}/ of the '{stored.Store.Container.Name}' container to compute them again.");
        }
        return relative;
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
        var (relative, worst) = RelativeDifference(model, inputs, onnxFeatures, count, inputSize, numFeatures);
        if (!(relative <= FeatureParityTolerance))
        {
            throw new TrainingException(
                $"The serving engine's backbone features differ from TorchSharp's: max |difference| {worst:E2} is {relative:E2} of the largest feature, above {FeatureParityTolerance:E0}, on {count} images. " +
                "Head-mode features would not be those the model computes; refusing to train.");
        }
        return relative;
    }

    /// <summary>TorchSharp's features of the first <paramref name="count"/> inputs against <paramref name="features"/>: the largest difference, absolute and relative to the largest feature.</summary>
    private static (double Relative, double Worst) RelativeDifference(ImageClassifier model, float[] inputs, float[] features, int count, int inputSize, int numFeatures)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var batch = tensor(inputs.AsSpan(0, count * 3 * inputSize * inputSize).ToArray(), [count, 3, inputSize, inputSize]);
        var reference = model.Backbone.call(batch).data<float>().ToArray();
        double scale = 0, worst = 0;
        for (var i = 0; i < count * numFeatures; i++)
        {
            scale = Math.Max(scale, Math.Abs(reference[i]));
            worst = Math.Max(worst, Math.Abs(reference[i] - features[i]));
        }
        return (worst / Math.Max(scale, 1e-12), worst);
    }

    /// <summary>
    /// One split's features while they are gathered: a row per image in dataset order (sized for every image at
    /// once: a growing list and its copy held up to three copies of all the features), filled from the store or
    /// computed, then packed to the images that have features (<see cref="Complete"/>).
    /// </summary>
    private sealed class SplitFeatures
    {
        private readonly float[] features;
        private readonly float[]? flipped;
        private readonly bool[] present;
        private readonly bool[] fromStore;
        private readonly Dictionary<LabeledImage, int> positions = new(ReferenceEqualityComparer.Instance);

        public SplitFeatures(IReadOnlyList<LabeledImage> images, int numFeatures, bool flip)
        {
            Images = images;
            NumFeatures = numFeatures;
            features = new float[(long)images.Count * numFeatures];
            flipped = flip ? new float[features.Length] : null;
            present = new bool[images.Count];
            fromStore = new bool[images.Count];
            for (var i = 0; i < images.Count; i++)
            {
                positions.TryAdd(images[i], i);
            }
            Missing = images;
        }

        public IReadOnlyList<LabeledImage> Images { get; }

        public int NumFeatures { get; }

        /// <summary>The images to compute: all of them, or after <see cref="CollectMissing"/> those without stored features.</summary>
        public IReadOnlyList<LabeledImage> Missing { get; private set; }

        /// <summary>Marks image <paramref name="index"/> as read from the store and returns its row to fill.</summary>
        public Memory<float> Store(int index)
        {
            present[index] = fromStore[index] = true;
            return features.AsMemory(index * NumFeatures, NumFeatures);
        }

        public void CollectMissing() => Missing = [.. Images.Where((_, i) => !fromStore[i])];

        public IEnumerable<int> StoredIndices() => Enumerable.Range(0, Images.Count).Where(i => fromStore[i]);

        public ReadOnlySpan<float> Row(int index) => features.AsSpan(index * NumFeatures, NumFeatures);

        public void Set(LabeledImage image, ReadOnlySpan<float> row, ReadOnlySpan<float> mirrored)
        {
            var index = positions[image];
            row.CopyTo(features.AsSpan(index * NumFeatures, NumFeatures));
            if (flipped is not null)
            {
                mirrored.CopyTo(flipped.AsSpan(index * NumFeatures, NumFeatures));
            }
            present[index] = true;
        }

        /// <summary>The rows of the images that have features, in dataset order (packed in place), and those images with their labels.</summary>
        public (float[] Features, float[]? Flipped, LoadedSplit Split) Complete(ImageFolderDataset dataset)
        {
            var split = new LoadedSplit();
            var written = 0;
            for (var i = 0; i < Images.Count; i++)
            {
                if (!present[i])
                {
                    continue; // skipped: it did not load
                }
                if (written != i * NumFeatures)
                {
                    Array.Copy(features, i * NumFeatures, features, written, NumFeatures);
                    if (flipped is not null)
                    {
                        Array.Copy(flipped, i * NumFeatures, flipped, written, NumFeatures);
                    }
                }
                written += NumFeatures;
                split.Add(Images[i], dataset.LabelIndex(Images[i].Label));
            }
            return (Trim(features, written), flipped is null ? null : Trim(flipped, written), split);
        }
    }

    private void Skip(LabeledImage image, ImageErrorCode code, string message) => Skip(image, code.ToString(), message);

    private void Skip(LabeledImage image, string code, string message)
    {
        lock (skipped)
        {
            skipped.Add(new SkippedImage(image.Source, code, message));
        }
    }
}
