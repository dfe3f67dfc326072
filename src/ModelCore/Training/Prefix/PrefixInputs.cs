using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Prefix;

/// <summary>
/// Finetune's fast path: the frozen prefix (the stem and every stage before the first unfrozen one) runs ONCE per image and
/// view on ONNX Runtime, without autograd, and its outputs are cached on disk (<see cref="PrefixCache"/>); the epochs then
/// train only the rest of the network on them (<see cref="SuffixClassifier"/>).
/// </summary>
internal sealed class PrefixInputs : IEpochInputs
{
    /// <summary>Batch of the passes through the suffix that compute features.</summary>
    private const int FeatureBatch = 64;

    private readonly PrefixBatches batches;
    private readonly int start;

    private PrefixInputs(PrefixBatches batches, int start, IReadOnlyList<LabeledImage> train, IReadOnlyList<LabeledImage> validation)
    {
        this.batches = batches;
        this.start = start;
        TrainImages = train;
        ValidationImages = validation;
    }

    public IBatchSource Batches => batches;

    public int[] TrainLabels => batches.TrainLabels;

    public IReadOnlyList<LabeledImage> TrainImages { get; }

    public IReadOnlyList<LabeledImage> ValidationImages { get; }

    public nn.Module<Tensor, Tensor> Network(ImageClassifier model) => new SuffixClassifier(model, start);

    /// <summary>The served view of every image (training images first) through the suffix, in eval mode.</summary>
    public Task<FeatureCache> FeaturesAsync(ImageClassifier model, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var suffix = new SuffixClassifier(model, start);
        var d = model.Backbone.NumFeatures;
        var (trainCount, validationCount) = (batches.TrainLabels.Length, batches.ValidationLabels.Length);
        var train = new float[trainCount * d];
        var validation = new float[validationCount * d];
        model.eval();
        using (inference_mode())
        {
            for (var first = 0; first < trainCount; first += FeatureBatch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var n = Math.Min(FeatureBatch, trainCount - first);
                suffix.Features(batches.PlainTrainBatch(first, n)).data<float>().CopyTo(train.AsSpan(first * d, n * d));
            }
            for (var first = 0; first < validationCount; first += FeatureBatch)
            {
                cancellationToken.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                var n = Math.Min(FeatureBatch, validationCount - first);
                suffix.Features(batches.ValidationBatch(first, n)).data<float>().CopyTo(validation.AsSpan(first * d, n * d));
            }
        }
        return Task.FromResult(new FeatureCache(train, batches.TrainLabels, validation, batches.ValidationLabels, batches.ValidationSources, d, batches.VerificationInputs, 0,
            watch.Elapsed.TotalSeconds)
        {
            TrainSources = batches.TrainSources,
            TrainImages = TrainImages,
            ValidationImages = ValidationImages,
        });
    }

    public void Dispose() => batches.Dispose();

    /// <summary>
    /// Decodes every image once; for each training image computes <paramref name="views"/> views (view 0 preprocessed as
    /// serving does, the others augmented with a seed drawn from the run's seed and the image's name), for each validation
    /// image its served view; runs the prefix up to stage <paramref name="start"/> over them on ONNX Runtime (checked
    /// against TorchSharp on the first images, <see cref="ParityCheck"/>) and writes the outputs to disk.
    /// </summary>
    public static async Task<PrefixInputs> PrepareAsync(ImageClassifier model, int start, int views, bool channelsLast, int seed, int batchSize, ImageLoader loader,
        ImagePreprocessor preprocessor, Augmentation augmentation, Device device, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var dataset = loader.Dataset;
        var resnet = (TorchVisionResNet)model.Backbone;
        model.eval(); // frozen: BatchNorm with its running statistics, as the exported prefix computes
        var inputSize = preprocessor.Config.InputSize;
        var length = preprocessor.InputLength;
        using var engine = new PrefixEngine(OnnxExport.ExportPrefix(model, inputSize, start), inputSize);
        var directory = Path.GetTempPath();
        PrefixCache? trainCache = null, validationCache = null;
        int[]? shape = null;
        double? parity = null;
        var total = dataset.Train.Count + dataset.Validation.Count;
        var passes = 0;
        // Where the pass's time goes, for the log: ONNX Runtime, the augmented views, the cache writes (the rest is reading and decoding).
        var (onnxTime, viewsTime, writeTime) = (new Stopwatch(), new Stopwatch(), new Stopwatch());

        // Runs the prefix over the given inputs in batches and writes output i to records[i].
        void Run(IReadOnlyList<float[]> inputs, int[] records, ref PrefixCache? cache, int capacity, bool halfPrecision)
        {
            for (var first = 0; first < inputs.Count; first += batchSize)
            {
                var count = Math.Min(batchSize, inputs.Count - first);
                var buffer = new float[count * length];
                for (var i = 0; i < count; i++)
                {
                    inputs[first + i].CopyTo(buffer, i * length);
                }
                onnxTime.Start();
                var (output, outputShape) = engine.Run(buffer, count);
                onnxTime.Stop();
                shape ??= outputShape;
                var compared = Math.Min(ParityCheck.Images, count);
                parity ??= ParityCheck.Require(x => resnet.ForwardPrefix(x, start), buffer, output.AsSpan(0, output.Length / count * compared), compared, inputSize,
                    "The frozen prefix on ONNX Runtime differs from TorchSharp's", "refusing to train on it");
                cache ??= new PrefixCache(directory, capacity, output.Length / count, halfPrecision);
                writeTime.Start();
                for (var i = 0; i < count; i++)
                {
                    cache.Write(records[first + i], output.AsSpan(i * cache.RecordLength, cache.RecordLength));
                }
                writeTime.Stop();
                passes += count;
            }
        }

        var train = new LoadedSplit();
        var validation = new LoadedSplit();
        var verification = new List<float[]>();
        try
        {
            await loader.LoadAsync(dataset.Train, batchSize, TrainingPhase.FrozenPrefix, 0, total,
                image => new LoadedView(preprocessor.Preprocess(image), Augmentation.WorkingImage(image, preprocessor.Config)), (items, first) =>
                {
                    // The batch's views go to the cache, and the batch is dropped when this returns.
                    var inputs = new float[items.Count * views][];
                    viewsTime.Start();
                    Parallel.For(0, items.Count, i =>
                    {
                        inputs[i * views] = items[i].Served;
                        var random = new Random(ViewSeed(seed, train.Sources[first + i]));
                        for (var v = 1; v < views; v++)
                        {
                            inputs[(i * views) + v] = new float[length];
                            augmentation.Apply(items[i].Working, random, inputs[(i * views) + v]);
                        }
                    });
                    viewsTime.Stop();
                    Run(inputs, [.. Enumerable.Range(first * views, items.Count * views)], ref trainCache, Math.Max(1, dataset.Train.Count * views), halfPrecision: true);
                }, train, cancellationToken).ConfigureAwait(false);
            await loader.LoadAsync(dataset.Validation, batchSize, TrainingPhase.FrozenPrefix, dataset.Train.Count, total, preprocessor.Preprocess, (items, first) =>
            {
                Run(items, [.. Enumerable.Range(first, items.Count)], ref validationCache, Math.Max(1, dataset.Validation.Count), halfPrecision: false);
                verification.AddRange(items.Take(ImageLoader.VerificationImages - verification.Count));
            }, validation, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            trainCache?.Dispose();
            validationCache?.Dispose();
            throw;
        }
        if (trainCache is null || validationCache is null || shape is null)
        {
            trainCache?.Dispose();
            validationCache?.Dispose();
            throw new DatasetException("Fine-tuning needs training and validation images that decode; see the skipped images.");
        }
        var seconds = watch.Elapsed.TotalSeconds;
        var batches = new PrefixBatches(trainCache, validationCache, views, channelsLast, shape, [.. train.Labels], [.. validation.Labels], train.Sources, validation.Sources, verification, device);
        progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, string.Create(CultureInfo.InvariantCulture,
            $"Frozen prefix (stem..{model.Backbone.StageNames[start - 1]}) of {train.Labels.Count} training images x {views} view(s) and {validation.Labels.Count} validation images " +
            $"on ONNX Runtime in {seconds:F1} s ({passes / Math.Max(seconds, 1e-9):F1} images/s: ONNX Runtime {onnxTime.Elapsed.TotalSeconds:F1} s, augmented views {viewsTime.Elapsed.TotalSeconds:F1} s, cache writes {writeTime.Elapsed.TotalSeconds:F1} s, reading, decoding and the parity check the rest), ONNX vs TorchSharp relative difference {parity:E1}; " +
            $"cached on disk ({batches.CacheBytes / 1e6:F0} MB, deleted when training ends){(channelsLast ? ", read in channels-last order" : "")}. Only {string.Join(", ", model.Backbone.StageNames.Skip(start))} and the head run each epoch.")));
        return new PrefixInputs(batches, start, train.Images, validation.Images);
    }

    /// <summary>A seed for an image's augmented views from the run's seed and the image's name: the same views whatever the order or the skipped images.</summary>
    private static int ViewSeed(int seed, string source)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(source));
        return unchecked(BitConverter.ToInt32(hash, 0) ^ (seed * 1_000_003));
    }

    /// <summary>A training image in the batch being cached: its served view and the image its augmented views crop from.</summary>
    private sealed record LoadedView(float[] Served, Image<Rgb24> Working) : IDisposable
    {
        public void Dispose() => Working.Dispose();
    }
}
