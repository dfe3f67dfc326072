using System.Diagnostics;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>Images that decoded, in dataset order, with their label indices.</summary>
internal sealed class LoadedSplit<T>
{
    public List<T> Items { get; } = [];
    public List<int> Labels { get; } = [];
    public List<string> Sources { get; } = [];
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
    public const int VerificationImages = 8;

    /// <summary>Largest relative difference between ONNX Runtime and TorchSharp features that head mode accepts.</summary>
    public const double FeatureParityTolerance = 1e-4;

    /// <summary>Images whose ONNX features are compared with TorchSharp's before the cache is built.</summary>
    public const int ParityImages = 4;

    /// <summary>
    /// Decodes a batch of images in parallel and maps each decoded image with <paramref name="map"/>;
    /// images that fail (read error or <see cref="ImageRejectedException"/>) are skipped and listed.
    /// </summary>
    public async Task LoadAsync<T>(IReadOnlyList<LabeledImage> images, int batchSize, TrainingPhase phase, int offset, int total,
        Func<Image<Rgb24>, T> map, Action<LoadedSplit<T>, int> onBatch, LoadedSplit<T> into, CancellationToken cancellationToken)
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
            var first = into.Items.Count;
            for (var i = 0; i < batch.Count; i++)
            {
                if (errors[i] is { } error)
                {
                    Skip(batch[i], error.Code, error.Message);
                }
                else if (results[i] is { } result)
                {
                    into.Items.Add(result);
                    into.Labels.Add(dataset.LabelIndex(batch[i].Label));
                    into.Sources.Add(batch[i].Source);
                }
            }
            onBatch(into, first);
            progress?.Report(new TrainingProgress(phase, offset + start + batch.Count, total));
        }
    }

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

        async Task<(float[] Features, float[]? Flipped, LoadedSplit<float[]> Split)> RunAsync(IReadOnlyList<LabeledImage> images, int offset, bool keepVerification)
        {
            var features = new List<float>();
            var flippedFeatures = new List<float>();
            var split = new LoadedSplit<float[]>();
            await LoadAsync(images, batchSize, TrainingPhase.Features, offset, total, map, (s, first) =>
            {
                var count = s.Items.Count - first;
                if (count == 0)
                {
                    return;
                }
                var buffer = new float[count * length];
                var mirrored = flip ? new float[count * length] : null;
                for (var i = 0; i < count; i++)
                {
                    Array.Copy(s.Items[first + i], 0, buffer, i * length, length);
                    if (mirrored is not null)
                    {
                        Array.Copy(s.Items[first + i], length, mirrored, i * length, length);
                    }
                }
                var batchFeatures = engine.ExtractFeatures(buffer, count);
                if (mirrored is not null)
                {
                    flippedFeatures.AddRange(engine.ExtractFeatures(mirrored, count));
                }
                parity ??= CheckParity(model, buffer, batchFeatures, Math.Min(ParityImages, count), inputSize, numFeatures);
                features.AddRange(batchFeatures);
                for (var i = 0; i < count; i++)
                {
                    if (keepVerification && verification.Count < VerificationImages)
                    {
                        verification.Add(s.Items[first + i].AsSpan(0, length).ToArray());
                    }
                    s.Items[first + i] = []; // the features are kept; the pixels are not
                }
            }, split, cancellationToken).ConfigureAwait(false);
            return ([.. features], flip ? [.. flippedFeatures] : null, split);
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
