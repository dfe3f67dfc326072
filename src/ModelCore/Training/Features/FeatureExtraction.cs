using System.Diagnostics;
using Azure;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// The frozen backbone's features of every image of a data set (head mode's input, and the features every other
/// mode's final model is described by), computed on the serving engine and checked against TorchSharp
/// (<see cref="ParityCheck"/>), or read from a feature store.
/// </summary>
internal sealed class FeatureExtraction(ImageLoader loader)
{
    /// <summary>
    /// Runs the frozen backbone once over every image on the serving engine (ONNX Runtime, the exported
    /// backbone + current head) and caches the pooled features. Before that, the engine's features on the
    /// first images are compared with TorchSharp's; a relative difference above 1e-4 stops the run. With
    /// <paramref name="stored"/>, the images whose blob and version have stored features are read, not computed
    /// (the first of them are decoded and checked against TorchSharp with the same tolerance), and the features
    /// computed are written to the store.
    /// </summary>
    /// <param name="flip">Also extract the features of every image flipped horizontally (one more backbone pass); not with <paramref name="stored"/>.</param>
    /// <param name="calibration">
    /// The int8 step's calibration sample (training images) and quantiser settings: those images go through the calibration
    /// graph instead of the serving graph, and their statistics come back in <see cref="FeatureCache.Calibration"/> when every
    /// one of them was computed here (none read from the store or failed to load).
    /// </param>
    /// <param name="int8Features">
    /// With <paramref name="calibration"/> and no store: the calibration sample goes first (through the calibration graph: its
    /// statistics and fp32 features), the backbone is quantised with its ranges, and every image's features are the int8
    /// backbone's (<see cref="FeatureCache.Int8"/>). Should a calibration image fail to load, the features are fp32 as without it.
    /// </param>
    /// <param name="collected">A calibration already collected (a fallback's second pass): kept as is, nothing recalibrated.</param>
    public async Task<FeatureCache> ExtractFeaturesAsync(
        ImageClassifier model, ImagePreprocessor preprocessor, int batchSize, CancellationToken cancellationToken, bool flip = false, StoredFeatures? stored = null,
        (IReadOnlyList<LabeledImage> Sample, Int8QuantizerOptions Options)? calibration = null, bool int8Features = false, FeaturePassCalibration? collected = null)
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
        using var calibrator = collected is null && calibration is { } asked ? FeaturePassCalibration.Start(graph, asked.Sample, asked.Options, inputSize) : null;
        var length = preprocessor.InputLength;
        double? parity = null;
        var verification = new List<float[]>();
        var train = new SplitFeatures(loader.Dataset.Train, numFeatures, flip);
        var validation = new SplitFeatures(loader.Dataset.Validation, numFeatures, flip);
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

        // With the int8 backbone: the calibration images first, then every other image through the int8 graph.
        OnnxEngine? int8Engine = null;
        Int8BackboneFeatures? int8 = null;
        var done = new HashSet<LabeledImage>(ReferenceEqualityComparer.Instance);

        async Task ComputeAsync(SplitFeatures split, int offset, bool keepVerification, bool keepCalibration)
        {
            var loaded = new LoadedSplit();
            var extractor = int8Engine ?? engine;
            IReadOnlyList<LabeledImage> images = done.Count == 0 ? split.Missing : [.. split.Missing.Where(i => !done.Contains(i))];
            await loader.LoadAsync(images, batchSize, TrainingPhase.Features, offset, total, map, (items, first) =>
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
                var batchFeatures = calibrator is null || !keepCalibration || done.Count > 0
                    ? extractor.ExtractFeatures(buffer, count)
                    : calibrator.ExtractFeatures(buffer, count, numFeatures, [.. Enumerable.Range(first, count).Select(i => loaded.Images[i])], (rows, n) => engine.ExtractFeatures(rows, n));
                var mirroredFeatures = mirrored is null ? null : extractor.ExtractFeatures(mirrored, count);
                parity ??= ParityCheck.Require(model.Backbone.call, buffer, batchFeatures.AsSpan(0, Math.Min(ParityCheck.Images, count) * numFeatures), Math.Min(ParityCheck.Images, count), inputSize,
                    "The serving engine's backbone features differ from TorchSharp's", "head-mode features would not be those the model computes; refusing to train");
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
                    verification.AddRange(items.Take(ImageLoader.VerificationImages - verification.Count).Select(item => item.AsSpan(0, length).ToArray()));
                }
            }, loaded, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            if (int8Features && calibrator is not null && stored is null)
            {
                (int8Engine, int8) = await CalibrateFirstAsync(model, engine, calibrator, calibration!.Value.Sample, train, preprocessor, batchSize, map, total, done,
                    p => parity ??= p, cancellationToken).ConfigureAwait(false);
            }
            await ComputeAsync(train, done.Count, keepVerification: false, keepCalibration: true).ConfigureAwait(false);
            await ComputeAsync(validation, train.Missing.Count, keepVerification: true, keepCalibration: false).ConfigureAwait(false);
        }
        finally
        {
            int8Engine?.Dispose();
        }
        if (stored is not null)
        {
            await stored.FlushAsync(cancellationToken).ConfigureAwait(false);
            if (stored.Read > 0)
            {
                var storedParity = await CheckStoredAsync(model, preprocessor, stored, validation, train, verification, cancellationToken).ConfigureAwait(false);
                parity = Math.Max(parity ?? 0, storedParity);
            }
        }
        var (trainFeatures, trainFlipped, trainSplit) = train.Complete(loader.Dataset);
        var (validationFeatures, validationFlipped, validationSplit) = validation.Complete(loader.Dataset);
        return new FeatureCache(trainFeatures, [.. trainSplit.Labels], validationFeatures, [.. validationSplit.Labels], validationSplit.Sources, numFeatures, verification, parity ?? 0, watch.Elapsed.TotalSeconds)
        {
            TrainSources = trainSplit.Sources,
            TrainImages = trainSplit.Images,
            ValidationImages = validationSplit.Images,
            TrainFlipped = trainFlipped,
            ValidationFlipped = validationFlipped,
            FromStore = stored?.Read ?? 0,
            Computed = total,
            Calibration = collected ?? (calibrator is { Complete: true } ? calibrator : null),
            Int8 = int8,
        };
    }

    /// <summary>
    /// The int8 backbone's start: the calibration sample's images (those of the training split) are loaded first and go
    /// through the calibration graph (their statistics, and their fp32 features, parity-checked against TorchSharp); when
    /// every one of them loaded, the backbone is quantised with their ranges and their rows are the int8 backbone's features
    /// of the inputs kept meanwhile. Otherwise their rows are the fp32 features and no int8 engine is returned (the rest is
    /// fp32, as without int8 features). <paramref name="done"/> gets every sample image tried (loaded or skipped).
    /// </summary>
    private async Task<(OnnxEngine? Engine, Int8BackboneFeatures? Features)> CalibrateFirstAsync(ImageClassifier model, OnnxEngine engine, FeaturePassCalibration calibrator,
        IReadOnlyList<LabeledImage> sample, SplitFeatures train, ImagePreprocessor preprocessor, int batchSize, Func<Image<Rgb24>, float[]> map, int total, HashSet<LabeledImage> done,
        Action<double> parity, CancellationToken cancellationToken)
    {
        var inTrain = new HashSet<LabeledImage>(train.Missing, ReferenceEqualityComparer.Instance);
        List<LabeledImage> images = [.. sample.Where(inTrain.Contains)];
        var numFeatures = train.NumFeatures;
        var kept = new List<(LabeledImage Image, float[] Item, float[] Fp32)>();
        var loaded = new LoadedSplit();
        var checkedParity = false;
        await loader.LoadAsync(images, batchSize, TrainingPhase.Features, 0, total, map, (items, first) =>
        {
            var count = items.Count;
            if (count == 0)
            {
                return;
            }
            var length = preprocessor.InputLength;
            var buffer = new float[count * length];
            for (var i = 0; i < count; i++)
            {
                Array.Copy(items[i], 0, buffer, i * length, length);
            }
            var batch = Enumerable.Range(first, count).Select(i => loaded.Images[i]).ToList();
            var features = calibrator.ExtractFeatures(buffer, count, numFeatures, batch, (_, _) => throw new InvalidOperationException("Every image here is a calibration image."));
            if (!checkedParity)
            {
                checkedParity = true;
                parity(ParityCheck.Require(model.Backbone.call, buffer, features.AsSpan(0, Math.Min(ParityCheck.Images, count) * numFeatures), Math.Min(ParityCheck.Images, count),
                    preprocessor.Config.InputSize, "The calibration graph's backbone features differ from TorchSharp's", "head-mode features would not be those the model computes; refusing to train"));
            }
            for (var i = 0; i < count; i++)
            {
                kept.Add((batch[i], items[i], features.AsSpan(i * numFeatures, numFeatures).ToArray()));
            }
        }, loaded, cancellationToken).ConfigureAwait(false);
        done.UnionWith(images);

        OnnxEngine? int8Engine = null;
        string? scheme = null;
        var clock = Stopwatch.StartNew();
        if (calibrator.Complete)
        {
            var quantized = calibrator.Quantize();
            scheme = quantized.Scheme;
            int8Engine = new OnnxEngine(quantized.Onnx, new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount });
        }
        var quantizeSeconds = clock.Elapsed.TotalSeconds;
        try
        {
            // The sample's own rows (and mirror rows), from the inputs kept: no image is decoded twice.
            var inputLength = preprocessor.InputLength;
            float[]? verificationInputs = null;
            float[]? verificationFeatures = null;
            for (var start = 0; start < kept.Count; start += batchSize)
            {
                var part = kept.GetRange(start, Math.Min(batchSize, kept.Count - start));
                var buffer = new float[part.Count * inputLength];
                var mirrored = train.Flipped ? new float[part.Count * inputLength] : null;
                for (var i = 0; i < part.Count; i++)
                {
                    Array.Copy(part[i].Item, 0, buffer, i * inputLength, inputLength);
                    if (mirrored is not null)
                    {
                        Array.Copy(part[i].Item, inputLength, mirrored, i * inputLength, inputLength);
                    }
                }
                float[] rows;
                if (int8Engine is null)
                {
                    rows = new float[part.Count * numFeatures];
                    for (var i = 0; i < part.Count; i++)
                    {
                        part[i].Fp32.CopyTo(rows, i * numFeatures);
                    }
                }
                else
                {
                    rows = int8Engine.ExtractFeatures(buffer, part.Count);
                    if (verificationInputs is null)
                    {
                        // Run on their own, as the served graph's verification will run them (a batch of their own).
                        var n = Math.Min(ParityCheck.Images, part.Count);
                        verificationInputs = buffer.AsSpan(0, n * inputLength).ToArray();
                        verificationFeatures = int8Engine.ExtractFeatures(verificationInputs, n);
                    }
                }
                var mirroredRows = mirrored is null ? null : (int8Engine ?? engine).ExtractFeatures(mirrored, part.Count);
                for (var i = 0; i < part.Count; i++)
                {
                    train.Set(part[i].Image, rows.AsSpan(i * numFeatures, numFeatures), mirroredRows is null ? default : mirroredRows.AsSpan(i * numFeatures, numFeatures));
                }
            }
            var features = int8Engine is null ? null
                : new Int8BackboneFeatures([.. kept.Select(k => (k.Image, k.Fp32))], verificationInputs ?? [], verificationFeatures ?? [], verificationInputs is null ? 0 : verificationInputs.Length / inputLength,
                    scheme!, quantizeSeconds);
            return (int8Engine, features);
        }
        catch
        {
            int8Engine?.Dispose();
            throw;
        }
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
            .Take(ImageLoader.VerificationImages).ToList();
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
                using var decoded = loader.Decoder.Decode(await image.ReadAsync(cancellationToken).ConfigureAwait(false), loader.DecodeShorterSide);
                input = preprocessor.Preprocess(decoded);
            }
            catch (Exception e) when (e is IOException or ImageRejectedException or RequestFailedException)
            {
                throw new TrainingException($"Image {image.Source} has stored features but could not be read or decoded to check them ({e.Message}); was it changed during training?");
            }
            input.CopyTo(inputs, k * input.Length);
            split.Row(index).CopyTo(expected.AsSpan(k * numFeatures));
            if (isValidation && verification.Count < ImageLoader.VerificationImages)
            {
                verification.Add(input);
            }
        }
        return ParityCheck.Require(model.Backbone.call, inputs, expected, chosen.Count, preprocessor.Config.InputSize,
            $"The stored features of key {stored.Key} differ from what the backbone computes now",
            $"refusing to train on them; delete the folder {stored.Key}/ of the '{stored.Store.Container.Name}' container to compute them again");
    }

    private static float[] Trim(float[] values, int length) => length == values.Length ? values : values.AsSpan(0, length).ToArray();

    /// <summary>The preprocessed input of the image mirrored left to right.</summary>
    internal static float[] FlippedInput(ImagePreprocessor preprocessor, Image<Rgb24> image)
    {
        using var mirror = image.Clone(x => x.Flip(FlipMode.Horizontal));
        return preprocessor.Preprocess(mirror);
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

        /// <summary>Whether the mirror images' features are gathered too.</summary>
        public bool Flipped => flipped is not null;

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
                split.Add(Images[i], dataset.ClassIndexOf(Images[i]));
            }
            return (Trim(features, written), flipped is null ? null : Trim(flipped, written), split);
        }
    }
}
