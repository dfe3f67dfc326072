using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Training.Prefix;
using ServerlessClassifier.ModelCore.Training.Probe;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>
/// Finetune's fast path: the frozen prefix (the stem and every stage before the first unfrozen one) runs
/// ONCE per image and view on ONNX Runtime, without autograd, and its outputs are cached on disk
/// (<see cref="PrefixCache"/>); the epochs then train only the rest of the network on them.
/// </summary>
public sealed partial class TransferTrainer
{
    /// <summary>
    /// The 0-based stage the fine-tune starts training at when its frozen prefix can be cached: finetune mode,
    /// <see cref="TrainingOptions.PrefixViews"/> at least 1, a first unfrozen stage after layer1, and a head
    /// that reads no stage output before the prefix's own. Null: the whole network runs every batch.
    /// </summary>
    internal static int? CachedPrefixStages(ImageClassifier model, TrainingOptions options)
    {
        if (options.Mode != TrainingMode.Finetune || options.PrefixViews < 1 || model.Backbone is not TorchVisionResNet resnet)
        {
            return null;
        }
        var first = resnet.StageNames.Select((name, index) => (name, index)).First(s => options.UnfreezeStages.Contains(s.name)).index;
        return first >= 1 && resnet.SuffixCanPool(first) ? first : null;
    }

    /// <summary>A training image in the batch being cached: its served view and the image its augmented views crop from.</summary>
    private sealed record LoadedView(float[] Served, Image<Rgb24> Working) : IDisposable
    {
        public void Dispose() => Working.Dispose();
    }

    /// <summary>
    /// Decodes every image once; for each training image computes <see cref="TrainingOptions.PrefixViews"/>
    /// views (view 0 preprocessed as serving does, the others augmented with a seed drawn from the run's
    /// seed and the image's name), for each validation image its served view; runs the prefix over them on
    /// ONNX Runtime (checked against TorchSharp on the first images) and writes the outputs to disk.
    /// </summary>
    private static async Task<PrefixBatches> CachePrefixAsync(ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, int stages, TrainingData loader,
        ImagePreprocessor preprocessor, Augmentation augmentation, Device device, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var model = setup.Model;
        model.eval(); // frozen: BatchNorm with its running statistics, as the exported prefix computes
        var inputSize = setup.Preprocessing.InputSize;
        var length = preprocessor.InputLength;
        var views = options.PrefixViews;
        using var engine = new PrefixEngine(OnnxExport.ExportPrefix(model, inputSize, stages), inputSize);
        var directory = Path.GetTempPath();
        PrefixCache? trainCache = null, validationCache = null;
        int[]? shape = null;
        double? parity = null;
        var total = dataset.Train.Count + dataset.Validation.Count;
        var passes = 0;

        // Runs the prefix over the given inputs in batches and writes output i to records[i].
        void Run(IReadOnlyList<float[]> inputs, int[] records, ref PrefixCache? cache, int capacity, bool halfPrecision)
        {
            for (var start = 0; start < inputs.Count; start += options.FeatureBatchSize)
            {
                var count = Math.Min(options.FeatureBatchSize, inputs.Count - start);
                var buffer = new float[count * length];
                for (var i = 0; i < count; i++)
                {
                    inputs[start + i].CopyTo(buffer, i * length);
                }
                var (output, outputShape) = engine.Run(buffer, count);
                shape ??= outputShape;
                parity ??= CheckPrefixParity(model, stages, buffer, output, Math.Min(TrainingData.ParityImages, count), inputSize);
                cache ??= new PrefixCache(directory, capacity, output.Length / count, halfPrecision);
                for (var i = 0; i < count; i++)
                {
                    cache.Write(records[start + i], output.AsSpan(i * cache.RecordLength, cache.RecordLength));
                }
                passes += count;
            }
        }

        var train = new LoadedSplit();
        var validation = new LoadedSplit();
        var verification = new List<float[]>();
        try
        {
            await loader.LoadAsync(dataset.Train, options.FeatureBatchSize, TrainingPhase.Features, 0, total,
                image => new LoadedView(preprocessor.Preprocess(image), Augmentation.WorkingImage(image, setup.Preprocessing)), (items, first) =>
                {
                    // The batch's views go to the cache, and the batch is dropped when this returns.
                    var inputs = new float[items.Count * views][];
                    Parallel.For(0, items.Count, i =>
                    {
                        inputs[i * views] = items[i].Served;
                        var random = new Random(ViewSeed(options.Seed, train.Sources[first + i]));
                        for (var v = 1; v < views; v++)
                        {
                            inputs[(i * views) + v] = new float[length];
                            augmentation.Apply(items[i].Working, random, inputs[(i * views) + v]);
                        }
                    });
                    Run(inputs, [.. Enumerable.Range(first * views, items.Count * views)], ref trainCache, Math.Max(1, dataset.Train.Count * views), halfPrecision: true);
                }, train, cancellationToken).ConfigureAwait(false);
            await loader.LoadAsync(dataset.Validation, options.FeatureBatchSize, TrainingPhase.Features, dataset.Train.Count, total, preprocessor.Preprocess, (items, first) =>
            {
                Run(items, [.. Enumerable.Range(first, items.Count)], ref validationCache, Math.Max(1, dataset.Validation.Count), halfPrecision: false);
                verification.AddRange(items.Take(TrainingData.VerificationImages - verification.Count));
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
        var batches = new PrefixBatches(trainCache, validationCache, views, shape, [.. train.Labels], [.. validation.Labels], train.Sources, validation.Sources, verification, device);
        Report(progress, string.Create(CultureInfo.InvariantCulture,
            $"Frozen prefix (stem..{model.Backbone.StageNames[stages - 1]}) of {train.Labels.Count} training images x {views} view(s) and {validation.Labels.Count} validation images " +
            $"on ONNX Runtime in {seconds:F1} s ({passes / Math.Max(seconds, 1e-9):F1} images/s), ONNX vs TorchSharp relative difference {parity:E1}; " +
            $"cached on disk ({batches.CacheBytes / 1e6:F0} MB, deleted when training ends). Only {string.Join(", ", model.Backbone.StageNames.Skip(stages))} and the head run each epoch."));
        return batches;
    }

    /// <summary>
    /// LP-FT on the cached prefix: the served view of every TRAINING image through the rest of the pretrained
    /// network (eval mode), a linear probe fitted on those features (cross-validated L2, temperature; the
    /// validation split stays unseen: it decides the epochs), and the head set to it before any stage trains.
    /// </summary>
    private static void InitialiseHeadFromCachedProbe(ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, PrefixBatches data, IProgress<TrainingProgress>? progress,
        CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        var model = setup.Model;
        model.eval();
        var count = data.TrainLabels.Length;
        var d = model.Backbone.NumFeatures;
        var features = new float[count * d];
        using (inference_mode())
        {
            for (var start = 0; start < count; start += EvaluationBatchSize)
            {
                using var scope = NewDisposeScope();
                var n = Math.Min(EvaluationBatchSize, count - start);
                model.Backbone.call(data.PlainTrainBatch(start, n)).data<float>().CopyTo(features.AsSpan(start * d, n * d));
            }
        }
        var fit = LinearProbe.Fit(features, data.TrainLabels, dataset.Labels.Count, null, options.ProbeFolds, options.Seed, report: message => Report(progress, message), cancellationToken: cancellationToken);
        SetHead(setup, fit);
        Report(progress, string.Create(CultureInfo.InvariantCulture,
            $"Head initialised from a linear probe on the {count} training images' features (L2 {fit.Lambda:G3} by {fit.Folds}-fold cross-validation, temperature {fit.Temperature:F2}, " +
            $"out-of-fold accuracy {fit.Grid.First(g => g.Lambda == fit.Lambda).Accuracy:P1}; {watch.Elapsed.TotalSeconds:F1} s); the validation split decides the epochs, the start included."));
    }

    /// <summary>The linear head set to a probe's weights (standardisation and temperature folded in).</summary>
    private static void SetHead(ModelSetup setup, ProbeFit fit)
    {
        using var noGrad = no_grad();
        var state = setup.Model.Head.state_dict();
        state["fc.weight"].copy_(tensor(fit.Weight, [fit.Bias.Length, fit.Weight.Length / fit.Bias.Length]));
        state["fc.bias"].copy_(tensor(fit.Bias));
    }

    /// <summary>A seed for an image's augmented views from the run's seed and the image's name: the same views whatever the order or the skipped images.</summary>
    private static int ViewSeed(int seed, string source)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(source));
        return unchecked(BitConverter.ToInt32(hash, 0) ^ (seed * 1_000_003));
    }

    private static double CheckPrefixParity(ImageClassifier model, int stages, float[] inputs, float[] onnx, int count, int inputSize)
    {
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var batch = tensor(inputs.AsSpan(0, count * 3 * inputSize * inputSize).ToArray(), [count, 3, inputSize, inputSize]);
        var reference = ((TorchVisionResNet)model.Backbone).ForwardPrefix(batch, stages).flatten().data<float>().ToArray();
        double scale = 0, worst = 0;
        for (var i = 0; i < reference.Length; i++)
        {
            scale = Math.Max(scale, Math.Abs(reference[i]));
            worst = Math.Max(worst, Math.Abs(reference[i] - onnx[i]));
        }
        var relative = worst / Math.Max(scale, 1e-12);
        if (!(relative <= TrainingData.FeatureParityTolerance))
        {
            throw new TrainingException(
                $"The frozen prefix on ONNX Runtime differs from TorchSharp's: max |difference| {worst:E2} is {relative:E2} of the largest value, above {TrainingData.FeatureParityTolerance:E0}, on {count} images; refusing to train on it.");
        }
        return relative;
    }
}
