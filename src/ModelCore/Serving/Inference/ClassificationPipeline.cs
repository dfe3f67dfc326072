using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>Milliseconds spent in each step of one classification.</summary>
public sealed record ClassificationTimings(double DecodeMs, double PreprocessMs, double InferenceMs)
{
    public double TotalMs => DecodeMs + PreprocessMs + InferenceMs;
}

/// <summary>
/// The answer for one image: the top labels with probabilities, and the decision. Below the
/// threshold, or far from every class the model was trained on, the decision is
/// <see cref="ClassificationPipeline.UnknownLabel"/> (as Custom Vision and Rekognition users expect) while
/// <see cref="Top"/> still shows what the model thought; <see cref="UnknownReason"/> says which rule said so.
/// </summary>
public sealed record Classification(string Label, double Confidence, bool IsUnknown, double Threshold, IReadOnlyList<LabelProbability> Top, ClassificationTimings Timings)
{
    /// <summary>
    /// The out-of-distribution score (<see cref="Ood.FeatureStatistics.Score"/>: the Mahalanobis distance of the
    /// image's features to the nearest class over the manifest's cut-off; above 1 is out of distribution); null
    /// when the model has no statistics.
    /// </summary>
    public double? OutOfDistribution { get; init; }

    /// <summary>Why the decision is unknown (<see cref="UnknownReasons"/>); null when it is not.</summary>
    public string? UnknownReason { get; init; }

    /// <summary>
    /// A multi-label model's answer: every label at or above its threshold, most probable first (empty: none of them);
    /// null for a multi-class model.
    /// </summary>
    public IReadOnlyList<PredictedLabel>? Labels { get; init; }

    /// <summary>
    /// A multi-label model's closest call: the smallest distance, over every label, between its probability and its
    /// threshold (near 0: one label could as well have gone the other way); null for a multi-class model, whose closest
    /// call is the margin between its top two probabilities.
    /// </summary>
    public double? ThresholdMargin { get; init; }

    /// <summary>
    /// The rule for a multi-label model: every label whose probability is at or above its own threshold is predicted; the
    /// decision (<see cref="Label"/>) is the most probable of them, or <see cref="ClassificationPipeline.UnknownLabel"/> when
    /// there is none (reason <see cref="UnknownReasons.LowConfidence"/>: each label is below its threshold) or the image is
    /// out of distribution. <paramref name="ranked"/> holds every label, most probable first; <see cref="Top"/> keeps
    /// its first <paramref name="top"/>.
    /// </summary>
    public static Classification DecideMultiLabel(IReadOnlyList<LabelProbability> ranked, IReadOnlyDictionary<string, double> thresholds, int top, ClassificationTimings timings,
        double? outOfDistribution = null)
    {
        ArgumentNullException.ThrowIfNull(ranked);
        ArgumentNullException.ThrowIfNull(thresholds);
        List<PredictedLabel> predicted = [.. ranked.Where(r => r.Probability >= thresholds[r.Label]).Select(r => new PredictedLabel(r.Label, r.Probability, thresholds[r.Label]))];
        var best = ranked[0];
        var none = predicted.Count == 0;
        var far = outOfDistribution > 1;
        var unknown = none || far;
        return new Classification(unknown ? ClassificationPipeline.UnknownLabel : predicted[0].Label, best.Probability, unknown, thresholds[best.Label], [.. ranked.Take(top)], timings)
        {
            OutOfDistribution = outOfDistribution,
            Labels = predicted,
            ThresholdMargin = ranked.Min(r => Math.Abs(r.Probability - thresholds[r.Label])),
            UnknownReason = (none, far) switch
            {
                (true, true) => UnknownReasons.Both,
                (true, false) => UnknownReasons.LowConfidence,
                (false, true) => UnknownReasons.OutOfDistribution,
                _ => null,
            },
        };
    }

    /// <summary>
    /// The one rule for the decision: the most probable label, or <see cref="ClassificationPipeline.UnknownLabel"/>
    /// when its probability is below <paramref name="threshold"/> or the out-of-distribution score is above 1.
    /// <paramref name="ranked"/> is most probable first.
    /// </summary>
    public static Classification Decide(IReadOnlyList<LabelProbability> ranked, double threshold, ClassificationTimings timings, double? outOfDistribution = null)
    {
        ArgumentNullException.ThrowIfNull(ranked);
        var best = ranked[0];
        var lowConfidence = best.Probability < threshold;
        var far = outOfDistribution > 1;
        var unknown = lowConfidence || far;
        return new Classification(unknown ? ClassificationPipeline.UnknownLabel : best.Label, best.Probability, unknown, threshold, ranked, timings)
        {
            OutOfDistribution = outOfDistribution,
            UnknownReason = (lowConfidence, far) switch
            {
                (true, true) => UnknownReasons.Both,
                (true, false) => UnknownReasons.LowConfidence,
                (false, true) => UnknownReasons.OutOfDistribution,
                _ => null,
            },
        };
    }
}

/// <summary>A label a multi-label model predicts: its probability, at or above its threshold.</summary>
public sealed record PredictedLabel(
    [property: System.Text.Json.Serialization.JsonPropertyName("label")] string Label,
    [property: System.Text.Json.Serialization.JsonPropertyName("probability")] double Probability,
    [property: System.Text.Json.Serialization.JsonPropertyName("threshold")] double Threshold);

/// <summary>Values of <see cref="Classification.UnknownReason"/>.</summary>
public static class UnknownReasons
{
    /// <summary>The top probability is below the threshold.</summary>
    public const string LowConfidence = "lowConfidence";

    /// <summary>The out-of-distribution score is above 1: the image is far from every class.</summary>
    public const string OutOfDistribution = "outOfDistribution";

    /// <summary>Both.</summary>
    public const string Both = "lowConfidenceAndOutOfDistribution";
}

/// <summary>An image decoded and preprocessed, ready to join a batch.</summary>
public sealed record PreparedImage(float[] Input, double DecodeMs, double PreprocessMs);

/// <summary>
/// Bytes in, labels out: decoding (with the limits), preprocessing exactly as the manifest says,
/// one engine call per batch, top-k, the confidence threshold and, for a model with feature statistics,
/// the out-of-distribution score from the same forward pass. Thread-safe; one per model.
/// </summary>
public sealed partial class ClassificationPipeline : IDisposable
{
    public const string UnknownLabel = "unknown";

    private readonly ImageDecoder decoder;
    private readonly ImagePreprocessor preprocessor;

    /// <param name="decoder">The decoder to share (the app's, with its limits and decode budget); null: a new one over <paramref name="limits"/>.</param>
    public ClassificationPipeline(ModelManifest manifest, IClassifierEngine engine, float[]? meanImage, ImageLimits? limits = null, Ood.FeatureStatistics? outOfDistribution = null,
        ImageDecoder? decoder = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(engine);
        if (engine.NumClasses != manifest.Labels.Count || engine.InputSize != manifest.Preprocessing.InputSize)
        {
            throw new ModelFormatException(
                $"The {engine.Name} engine has {engine.NumClasses} outputs for {engine.InputSize}px input; the manifest has {manifest.Labels.Count} labels for {manifest.Preprocessing.InputSize}px.");
        }
        Manifest = manifest;
        Engine = engine;
        OutOfDistribution = outOfDistribution;
        this.decoder = decoder ?? new ImageDecoder(limits);
        preprocessor = new ImagePreprocessor(manifest.Preprocessing, meanImage);
    }

    /// <summary>The serving pipeline: ONNX Runtime over the package's verified graph for this CPU (<see cref="ModelPackage.ServedGraph"/>).</summary>
    public static ClassificationPipeline CreateServing(ModelPackage package, OnnxEngineOptions? options = null, ImageLimits? limits = null, ImageDecoder? decoder = null)
    {
        ArgumentNullException.ThrowIfNull(package);
        var onnx = package.GetServedGraph();
        // The package's verified array itself when it is one whole array (it is): a model is not copied.
        var bytes = MemoryMarshal.TryGetArray(onnx, out var segment) && segment.Offset == 0 && segment.Count == segment.Array!.Length ? segment.Array : onnx.ToArray();
        return Create(package, new OnnxEngine(bytes, options ?? OnnxEngineOptions.Default), limits, decoder);
    }

    /// <summary>
    /// The serving pipeline over a verified graph file on local disk (<c>LocalModelCache</c>): ONNX Runtime reads the file,
    /// so the graph is never held in the managed heap; the package supplies the manifest and the small files. The session
    /// keeps its optimised graph beside the file for the next process on this instance (<see cref="OptimizedGraphFile"/>).
    /// </summary>
    public static ClassificationPipeline CreateServing(ModelPackage package, string onnxPath, OnnxEngineOptions? options = null, ImageLimits? limits = null, ImageDecoder? decoder = null)
    {
        ArgumentNullException.ThrowIfNull(package);
        return Create(package, new OnnxEngine(onnxPath, options ?? OnnxEngineOptions.Default, keepOptimizedGraph: true), limits, decoder);
    }

    private static ClassificationPipeline Create(ModelPackage package, OnnxEngine engine, ImageLimits? limits, ImageDecoder? decoder)
    {
        try
        {
            return new ClassificationPipeline(package.Manifest, engine, package.ReadMeanImage(), limits, package.ReadOutOfDistribution(), decoder)
            {
                ServedGraph = package.ServedGraph,
            };
        }
        catch
        {
            engine.Dispose();
            throw;
        }
    }

    public ModelManifest Manifest { get; }

    /// <summary>Which of the package's graphs runs, and why (null for a pipeline made from a manifest and an engine directly).</summary>
    public ServedGraph? ServedGraph { get; private init; }

    public IClassifierEngine Engine { get; }

    /// <summary>The statistics behind the out-of-distribution score; null: no score.</summary>
    public Ood.FeatureStatistics? OutOfDistribution { get; }

    public ImageLimits Limits => decoder.Limits;

    public ImageDecoder Decoder => decoder;

    /// <summary>Decodes and preprocesses; throws <see cref="ImageRejectedException"/> for bad input. Blocks while the decoder's budget is spent.</summary>
    public PreparedImage Prepare(ReadOnlyMemory<byte> image) => PrepareAsync(image, CancellationToken.None).GetAwaiter().GetResult();

    /// <summary>Decodes (within the decoder's budget, waiting cancellably for room) and preprocesses; throws <see cref="ImageRejectedException"/> for bad input.</summary>
    public Task<PreparedImage> PrepareAsync(ReadOnlyMemory<byte> image, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp(); // the decode's time includes any wait for the budget
        return decoder.DecodeAsync(image, preprocessor.DecodeShorterSide, decoded =>
        {
            var decodeMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
            var clock = Stopwatch.StartNew();
            var input = preprocessor.Preprocess(decoded);
            return new PreparedImage(input, decodeMs, clock.Elapsed.TotalMilliseconds);
        }, cancellationToken);
    }

    /// <summary>Classifies one image; throws <see cref="ImageRejectedException"/> for bad input.</summary>
    public Classification Classify(ReadOnlyMemory<byte> image, int top = 5, double? threshold = null) =>
        ClassifyPrepared([Prepare(image)], top, threshold)[0];

    /// <summary>One engine call for several prepared images; results in the same order.</summary>
    public IReadOnlyList<Classification> ClassifyPrepared(IReadOnlyList<PreparedImage> images, int top = 5, double? threshold = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0)
        {
            return [];
        }
        var length = preprocessor.InputLength;
        var batch = new float[images.Count * length];
        for (var i = 0; i < images.Count; i++)
        {
            images[i].Input.AsSpan().CopyTo(batch.AsSpan(i * length, length));
        }
        var clock = Stopwatch.StartNew();
        var (probabilities, features) = Engine.Predict(batch, images.Count, withFeatures: OutOfDistribution is not null);
        // A batch shares one forward pass; each image is charged its share of it.
        var inferenceMs = clock.Elapsed.TotalMilliseconds / images.Count;
        var classes = Manifest.Labels.Count;
        CheckThreshold(threshold);
        var thresholds = IsMultiLabel ? LabelThresholds(threshold) : null;
        var results = new Classification[images.Count];
        for (var i = 0; i < images.Count; i++)
        {
            // A multi-label decision reads every label's probability; Top keeps the first top.
            var ranked = TopK.Select(probabilities.AsSpan(i * classes, classes), Manifest.Labels, thresholds is null ? top : classes);
            double? score = features is not null && OutOfDistribution is { } ood && features.Length == images.Count * ood.Features
                ? ood.Score(features.AsSpan(i * ood.Features, ood.Features))
                : null;
            var timings = new ClassificationTimings(images[i].DecodeMs, images[i].PreprocessMs, inferenceMs);
            results[i] = thresholds is null ? Classification.Decide(ranked, ThresholdFor(ranked[0].Label, threshold), timings, score) : Classification.DecideMultiLabel(ranked, thresholds, top, timings, score);
        }
        return results;
    }

    /// <summary>True for a multi-label model (<see cref="ModelKind.MultiLabel"/>): sigmoid outputs, a threshold per label.</summary>
    public bool IsMultiLabel => Manifest.Kind == ModelKind.MultiLabel;

    /// <summary>A multi-label model's threshold per label for a request: the caller's for every label, else each label's own from the manifest.</summary>
    public IReadOnlyDictionary<string, double> LabelThresholds(double? requested)
    {
        var labels = Manifest.Labels;
        var own = Manifest.LabelThresholds ?? throw new InvalidOperationException("The model is not multi-label: it has no threshold per label.");
        CheckThreshold(requested);
        return labels.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => requested ?? own[x.i], StringComparer.Ordinal);
    }

    /// <summary>
    /// The threshold a top-1 answer of <paramref name="label"/> must reach: the caller's for every class when given, else the
    /// class's own (<see cref="ModelManifest.ClassThresholds"/>), else the manifest's single threshold. Must be within 0..1.
    /// </summary>
    public double ThresholdFor(string label, double? requested)
    {
        CheckThreshold(requested);
        return requested ?? Manifest.ThresholdFor(label);
    }

    private static void CheckThreshold(double? requested)
    {
        if (requested is not (null or (>= 0 and <= 1)))
        {
            throw new ArgumentOutOfRangeException(nameof(requested), requested, "threshold must be between 0 and 1");
        }
    }

    /// <summary>
    /// Classifies one small JPEG (256 x 256, kept in this assembly), so that the first real request does not pay for first
    /// use: JIT compilation of decoding, resizing and preprocessing, and ONNX Runtime's first-run allocations; and, once per
    /// process, decodes it again at reduced scale, the path a large JPEG (a phone photo) takes: SkiaSharp's native library
    /// loaded and its code compiled. A graph that loads but cannot run fails here, as <see cref="InvalidDataException"/>.
    /// </summary>
    public void WarmUp()
    {
        try
        {
            // Decoded within the default limits, not this pipeline's (the warm-up image is not an upload), but charged
            // to the same decode budget as every other decode.
            var warmUpDecoder = new ImageDecoder(ImageLimits.Default, decoder.Budget);
            var input = warmUpDecoder.Decode(WarmUpJpeg.Value, preprocessor.DecodeShorterSide, preprocessor.Preprocess);
            ClassifyPrepared([new PreparedImage(input, 0, 0)], top: 1);
            if (Interlocked.Exchange(ref reducedScaleWarmedUp, 1) == 0)
            {
                try
                {
                    // 256 px decoded at 1/4: the same code as a 12 MP photo's decode at reduced scale, at a cost of a few milliseconds.
                    warmUpDecoder.Decode(WarmUpJpeg.Value, minShorterSide: 64, image => image.Width);
                }
                catch (Exception e) when (e is ImageRejectedException or DllNotFoundException or TypeInitializationException)
                {
                    // Only a head start: the model is fine, and a large JPEG would meet the same answer without the warm-up.
                }
            }
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"The ONNX graph loaded but could not run: {e.Message}", e);
        }
    }

    public void Dispose() => Engine.Dispose();

    private static int reducedScaleWarmedUp;

    private static readonly Lazy<byte[]> WarmUpJpeg = new(() =>
    {
        using var stream = typeof(ClassificationPipeline).Assembly.GetManifestResourceStream("ServerlessClassifier.ModelCore.Inference.WarmUp.jpg")
            ?? throw new InvalidOperationException("The warm-up image is missing from the assembly.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    });
}
