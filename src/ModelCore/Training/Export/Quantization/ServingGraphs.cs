using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>Which graph a model serves.</summary>
public enum PrecisionChoice
{
    /// <summary>int8 when it passes the check, else fp32 (saying why).</summary>
    Auto,

    /// <summary>int8, or a refusal with the check's figures.</summary>
#pragma warning disable CA1720 // "int8" is the precision's name in ONNX and every runtime, not a C# type name.
    Int8,
#pragma warning restore CA1720

    /// <summary>The fp32 graph; no int8 graph is made.</summary>
    Fp32,
}

/// <summary>How the served graph is chosen and checked: a plan's <c>precision</c> settings.</summary>
public sealed record PrecisionOptions
{
    [Setting("precision")]
    public PrecisionChoice Precision { get; init; } = PrecisionChoice.Auto;

    /// <summary>
    /// Training images (a seeded random sample) the activation ranges are calibrated on. 32 would calibrate 3.6x faster and
    /// agreed as well on 500 held-out emoji, but the served int8 model of the 1,820-image benchmark lost 1.0 point of
    /// held-out accuracy with it (docs/benchmarks.md, issue 31): 128 stays until a larger measurement says otherwise.
    /// </summary>
    [Setting("int8 calibration images")]
    public int CalibrationImages { get; init; } = 128;

    /// <summary>The most images the int8 check classifies: a sample of the held-out images, stratified by class, seeded.</summary>
    [Setting("int8 check images")]
    public int CheckImages { get; init; } = 1000;

    /// <summary>
    /// The most of the check images the second, 7-bit graph is judged on (<see cref="ServingGraph.Portable"/>): a sample of
    /// them, stratified by class, seeded. Its int8 forward is the second graph's whole cost: on all 1,000 check images of
    /// 2,000 it took about as long as the 8-bit graph's check (docs/benchmarks.md, "A second int8 graph").
    /// </summary>
    [Setting("int8 7-bit graph check images")]
    public int PortableCheckImages { get; init; } = 250;

    /// <summary>int8 accuracy on the check images may be at most this many points below fp32's.</summary>
    [Setting("int8 accuracy drop allowed (points)")]
    public double MaxAccuracyDropPoints { get; init; } = 0.5;

    /// <summary>
    /// Head mode (one label per image, no feature cache): when an int8 graph will be made, calibrate on the calibration
    /// sample first, quantise the backbone, and extract every image's features with the int8 backbone, so the probe is
    /// fitted on exactly the features the served int8 graph computes (about half the fp32 forward's time with VNNI).
    /// The int8 check then compares, out-of-fold on the calibration images (whose fp32 features the calibration pass
    /// gives), each fold head's answers on the int8 and the fp32 features; when it fails, every image's fp32 features are
    /// extracted and the head fitted again, as with this off. Off by default: on the accuracy benchmark the served model's
    /// test accuracy moved +1.1 and -1.9 points on two sets against the head fitted on fp32 features
    /// (docs/benchmarks-accuracy.md, "int8 and calibration"), beyond the 0.3 point a faster default may cost.
    /// </summary>
    [Setting("int8 features")]
    public bool Int8Features { get; init; }

    /// <summary>
    /// Bits of the int8 graph's weights, chosen for the CPU that will serve it: null (auto, the default) leaves the choice to
    /// the CPU that trains (8 with VNNI or Arm's dot product, else 7: <see cref="Int8QuantizerOptions.WeightLevels"/>); 8
    /// for serving CPUs with VNNI only; 7 for CPUs without it (AVX2, e.g. AMD EPYC Milan), where ONNX Runtime adds pairs of
    /// uint8 x int8 products into saturating 16 bits: 8-bit weights can overflow there, so the graph serves answers its check did not measure, while 7-bit
    /// weights give the same integer results on both kinds of CPU (docs/architecture.md, "int8").
    /// </summary>
    [Setting("int8 weight bits")]
    public int? Int8WeightBits { get; init; }

    [Setting("int8 quantiser")]
    public Int8QuantizerOptions Quantizer { get; init; } = Int8QuantizerOptions.Default;

    /// <summary>The quantiser's options with <see cref="Int8WeightBits"/> applied: what the int8 graph is made with.</summary>
    public Int8QuantizerOptions EffectiveQuantizer => Int8WeightBits switch
    {
        8 => Quantizer with { WeightLevels = Int8QuantizerOptions.FullWeightLevels },
        7 => Quantizer with { WeightLevels = Int8QuantizerOptions.ReducedWeightLevels },
        _ => Quantizer,
    };

    /// <exception cref="PlanException">A value out of range, named.</exception>
    public void Validate()
    {
        if (!Enum.IsDefined(Precision))
        {
            throw new PlanException("precision", $"Precision {Precision}: use auto, int8 or fp32.");
        }
        if (CalibrationImages < 1)
        {
            throw new PlanException("int8 calibration images", $"int8 calibration images {CalibrationImages}: at least 1.");
        }
        if (CheckImages < 1)
        {
            throw new PlanException("int8 check images", $"int8 check images {CheckImages}: at least 1.");
        }
        if (PortableCheckImages < 1)
        {
            throw new PlanException("int8 7-bit graph check images", $"int8 7-bit graph check images {PortableCheckImages}: at least 1.");
        }
        if (!(MaxAccuracyDropPoints >= 0 && double.IsFinite(MaxAccuracyDropPoints)))
        {
            throw new PlanException("int8 accuracy drop allowed (points)", $"int8 accuracy drop allowed {MaxAccuracyDropPoints}: 0 or more points.");
        }
        if (Int8WeightBits is { } bits and not (7 or 8))
        {
            throw new PlanException("int8 weight bits", $"int8 weight bits {bits}: 8 (serving CPUs with VNNI), 7 (any x86 CPU, AVX2 included) or auto (the training CPU's choice).");
        }
        if (Int8WeightBits is not null && Quantizer.WeightLevels != 0 && Quantizer.WeightLevels != EffectiveQuantizer.WeightLevels)
        {
            throw new PlanException("int8 weight bits",
                $"int8 weight bits {Int8WeightBits} contradicts int8 weight levels {Quantizer.WeightLevels} (the quantiser's own setting): give one of them.");
        }
        Quantizer.Validate();
    }
}

/// <summary>The graph to serve, its precision and, when an int8 graph was made, its check.</summary>
public sealed record ServingGraph(byte[] Onnx, ModelPrecision Precision, QuantizationSummary? Quantization)
{
    /// <summary>Where the int8 step's time went: reading the calibration images, calibrating and quantising, the check (empty when no int8 graph was made).</summary>
    public IReadOnlyList<StepTime> Timings { get; init; } = [];

    /// <summary>
    /// The graph CPUs without 8-bit dot products serve instead, when this is an int8 graph with 8-bit weights made because
    /// the bits were left to the training CPU (<see cref="ServingGraphs.PortableQuantizer"/>): the 7-bit graph when it
    /// passed its check, else the fp32 graph; null otherwise.
    /// </summary>
    public PortableGraph? Portable { get; init; }

    /// <summary>Why an int8 graph that was made is not served (its check's figures); null when it is, or none was made.</summary>
    public string? Refusal => Quantization is { Accepted: false } q ? RefusalMessage(q) : null;

    internal static string RefusalMessage(QuantizationSummary q) => q.PerLabel is { Count: > 0 } perLabel
        ? MultiLabelRefusal(q, perLabel.MaxBy(l => l.AccuracyDropPoints)!)
        : string.Create(CultureInfo.InvariantCulture,
        $"the int8 graph's accuracy on the {q.ValidationImages} {q.Evidence ?? "validation"} images is {q.Int8Accuracy:P1}, {q.AccuracyDropPoints:F1} points below fp32's {q.Fp32Accuracy:P1} " +
        $"(at most {q.MaxAccuracyDropPoints:0.##} allowed{Spread(q)}); top-1 agreement {q.Top1Agreement:P1}");

    private static string MultiLabelRefusal(QuantizationSummary q, LabelQuantizationCheck worst) => string.Create(CultureInfo.InvariantCulture,
        $"on the {q.ValidationImages} {q.Evidence ?? "validation"} images, the int8 graph's decisions for label \"{worst.Label}\" (at its threshold {worst.Threshold:0.###}) are right on " +
        $"{worst.Int8Accuracy:P1}, {worst.AccuracyDropPoints:F1} points below fp32's {worst.Fp32Accuracy:P1} (at most {q.MaxAccuracyDropPoints:0.##} allowed for every label); " +
        $"its decisions agree with fp32's on {worst.Agreement:P1} of the images, every label's on {q.Top1Agreement:P1} of the decisions");

    /// <summary>", 95 % interval a to b points", or nothing for a summary without one.</summary>
    public static string Spread(QuantizationSummary q) => q is { AccuracyDropLowPoints: { } low, AccuracyDropHighPoints: { } high }
        ? string.Create(CultureInfo.InvariantCulture, $"; 95 % interval {low:F1} to {high:F1}")
        : "";
}

/// <summary>A model's graph for CPUs without 8-bit dot products (<see cref="PortableGraphSpec"/>): its bytes, precision and the 7-bit graph's check.</summary>
public sealed record PortableGraph(byte[] Onnx, ModelPrecision Precision, QuantizationSummary? Quantization);

/// <summary>
/// Makes the graph a model serves from its verified fp32 export: for int8, calibrates on a sample of the training
/// images, quantises (<see cref="Int8Quantizer"/>), then classifies a bounded sample of held-out images
/// (<see cref="PrecisionOptions.CheckImages"/>, stratified by class) with the int8 graph and compares its answers with the
/// fp32 ones training already computed on them; the int8 graph is kept only when its accuracy is within
/// <see cref="PrecisionOptions.MaxAccuracyDropPoints"/> of fp32's. Images that no longer decode are left out of both counts.
/// </summary>
public static class ServingGraphs
{
    /// <summary>Images decoded and classified at a time during calibration and the check.</summary>
    private const int BatchSize = 16;

    /// <summary>
    /// The graph to serve, its int8 check judged against fp32 answers training already computed on images the head did not
    /// train on (<paramref name="reference"/>): the fp32 graph does not run again. A probe's out-of-fold images go through
    /// their fold heads for both precisions; validation images through the served head.
    /// </summary>
    /// <param name="fp32Onnx">The verified fp32 export.</param>
    /// <param name="labels">The model's labels in output order.</param>
    /// <param name="trainImages">The images the model was trained on: the calibration sample is drawn from them.</param>
    /// <param name="reference">The held-out images and their fp32 logits.</param>
    /// <param name="preprocessor">The model's preprocessing.</param>
    /// <param name="options">Which precision, and how int8 is made and checked.</param>
    /// <param name="seed">Seeds the calibration sample and the check's sample.</param>
    /// <param name="collected">
    /// The calibration the feature pass collected (<see cref="CalibrationRequest"/>), used instead of running the calibration
    /// graph again when it stands for this graph's and sample's; null, or one that does not, and the sample is calibrated here.
    /// </param>
    /// <param name="progress">Progress in <see cref="TrainingPhase.Quantization"/>.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    public static Task<ServingGraph> CreateAsync(byte[] fp32Onnx, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> trainImages, HeldOutReference reference,
        ImagePreprocessor preprocessor, PrecisionOptions options, int seed, FeaturePassCalibration? collected = null,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(labels);
        if (reference.Logits.Length != reference.Images.Count * labels.Count || reference.Labels.Count != reference.Images.Count
            || (reference.Heads is not null && reference.HeadOf?.Count != reference.Images.Count))
        {
            throw new ArgumentException("The reference's images, labels, logits and heads must agree in number.", nameof(reference));
        }
        return CreateCoreAsync(fp32Onnx, labels, trainImages, reference.Images, [.. reference.Labels], reference, preprocessor, options, seed, collected, progress, cancellationToken);
    }

    /// <summary>
    /// The graph to serve, its int8 check made by running both graphs on <paramref name="checkImages"/> (for callers without
    /// fp32 answers of their own).
    /// </summary>
    /// <param name="checkImages">The labelled images the check classifies (a bounded, stratified sample of them).</param>
    /// <inheritdoc cref="CreateAsync(byte[], IReadOnlyList{string}, IReadOnlyList{LabeledImage}, HeldOutReference, ImagePreprocessor, PrecisionOptions, int, FeaturePassCalibration, IProgress{TrainingProgress}, CancellationToken)"/>
    public static Task<ServingGraph> CreateAsync(byte[] fp32Onnx, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> trainImages, IReadOnlyList<LabeledImage> checkImages,
        ImagePreprocessor preprocessor, PrecisionOptions options, int seed,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(checkImages);
        ArgumentNullException.ThrowIfNull(labels);
        return CreateCoreAsync(fp32Onnx, labels, trainImages, checkImages, [.. checkImages.Select(im => LabelIndex(labels, im.Label))], null, preprocessor, options, seed, null, progress,
            cancellationToken);
    }

    private static async Task<ServingGraph> CreateCoreAsync(byte[] fp32Onnx, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> trainImages, IReadOnlyList<LabeledImage> checkImages,
        int[] checkLabels, HeldOutReference? reference, ImagePreprocessor preprocessor, PrecisionOptions options, int seed, FeaturePassCalibration? collected,
        IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(fp32Onnx);
        ArgumentNullException.ThrowIfNull(trainImages);
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Precision == PrecisionChoice.Fp32)
        {
            return new ServingGraph(fp32Onnx, ModelPrecision.Fp32, null);
        }
        var sample = CalibrationSample(trainImages, options.CalibrationImages, seed);
        if (reference?.Int8Features is { } fitted)
        {
            return FromInt8Features(fp32Onnx, fitted, sample, preprocessor, options, collected);
        }
        var decoder = new ImageDecoder();
        var checkedIndices = StratifiedSample(checkLabels, options.CheckImages, seed);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var graph = CalibrationGraph.Build(fp32Onnx, options.EffectiveQuantizer.FloatStem);
        var portableOptions = PortableQuantizer(options);
        Int8Graph quantized;
        Int8Graph? portable = null;
        List<StepTime> timings;
        var total = checkedIndices.Length;
        if (collected is not null && collected.StandsFor(graph, sample, options.EffectiveQuantizer))
        {
            // The feature pass ran this very calibration graph over these very images: its statistics are this step's.
            var ranges = collected.Ranges(options.EffectiveQuantizer.Calibration);
            quantized = Int8Quantizer.Quantize(graph, ranges, collected.Images, [], preprocessor.Config.InputSize, options.EffectiveQuantizer);
            timings = [new StepTime($"quantise with the ranges of {collected.Images} calibration images from the feature pass", clock.Elapsed.TotalSeconds)];
            if (portableOptions is not null)
            {
                clock.Restart();
                portable = Int8Quantizer.Quantize(graph, ranges, collected.Images, [], preprocessor.Config.InputSize, portableOptions);
                timings.Add(new StepTime("quantise the 7-bit graph", clock.Elapsed.TotalSeconds));
            }
        }
        else
        {
            total += sample.Count;
            var calibration = new List<float[]>();
            await ReadAsync(sample, decoder, preprocessor, BatchSize, (batch, _) => calibration.AddRange(batch), progress, 0, total, cancellationToken).ConfigureAwait(false);
            if (calibration.Count == 0)
            {
                throw new TrainingException("No training image could be read to calibrate the int8 graph.");
            }
            timings = [new StepTime($"read {calibration.Count} calibration images", clock.Elapsed.TotalSeconds)];
            clock.Restart();
            var ranges = ActivationCalibrator.Calibrate(graph, calibration, preprocessor.Config.InputSize, options.EffectiveQuantizer.Calibration);
            quantized = Int8Quantizer.Quantize(graph, ranges, calibration.Count, calibration, preprocessor.Config.InputSize, options.EffectiveQuantizer);
            timings.Add(new StepTime("calibrate and quantise", clock.Elapsed.TotalSeconds));
            if (portableOptions is not null)
            {
                clock.Restart();
                portable = Int8Quantizer.Quantize(graph, ranges, calibration.Count, calibration, preprocessor.Config.InputSize, portableOptions);
                timings.Add(new StepTime("quantise the 7-bit graph", clock.Elapsed.TotalSeconds));
            }
            calibration.Clear();
        }
        clock.Restart();

        var engineOptions = new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount };
        // The fp32 graph runs only when no fp32 answers were given.
        using var fp32Engine = reference is null ? new OnnxEngine(fp32Onnx, engineOptions) : null;
        var multiLabel = reference?.MultiLabel;
        // Each int8 graph made is judged on the same images in the same pass (decoded once): the served graph, then the 7-bit one.
        List<Judged> judged = [new Judged(quantized, new OnnxEngine(quantized.Onnx, engineOptions), multiLabel, null)];
        using var served = judged[0];
        var sessionStarted = System.Diagnostics.Stopwatch.GetTimestamp();
        // The 7-bit graph is judged on a stratified sample of the check images (all of them when they fit).
        var portableRows = portable is null ? null
            : StratifiedSample([.. checkedIndices.Select(i => checkLabels[i])], options.PortableCheckImages, seed).Select(k => checkedIndices[k]).ToHashSet();
        using var portableJudged = portable is null ? null : new Judged(portable, new OnnxEngine(portable.Onnx, engineOptions), multiLabel, portableRows);
        if (portableJudged is not null)
        {
            portableJudged.Seconds = System.Diagnostics.Stopwatch.GetElapsedTime(sessionStarted).TotalSeconds; // its session's creation is its cost too
            judged.Add(portableJudged);
        }
        var length = preprocessor.InputLength;
        var classes = labels.Count;
        var indexOf = new Dictionary<LabeledImage, int>(ReferenceEqualityComparer.Instance);
        foreach (var i in checkedIndices)
        {
            indexOf.TryAdd(checkImages[i], i);
        }
        // The 7-bit graph's sample first, so that its forward passes run on whole batches (the verdicts do not depend on the order).
        var readOrder = portableRows is null ? checkedIndices : [.. checkedIndices.OrderBy(i => portableRows.Contains(i) ? 0 : 1)];
        await ReadAsync([.. readOrder.Select(i => checkImages[i])], decoder, preprocessor, BatchSize, (batch, images) =>
        {
            var input = new float[batch.Count * length];
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].CopyTo(input.AsSpan(i * length));
            }
            var batchRows = images.Select(im => indexOf[im]).ToArray();
            var withHeads = reference?.Heads is not null;
            float[]? batchFp32 = null;
            foreach (var judge in judged)
            {
                var started = System.Diagnostics.Stopwatch.GetTimestamp();
                // The rows of this batch the graph is judged on: all, or those of its sample.
                var picked = judge.Rows is null ? null : Enumerable.Range(0, batchRows.Length).Where(i => judge.Rows.Contains(batchRows[i])).ToArray();
                if (picked is { Length: 0 })
                {
                    continue;
                }
                var rows = picked is null ? batchRows : [.. picked.Select(i => batchRows[i])];
                var judgedInput = picked is null ? input : Rows(input, length, picked);
                var (int8Probabilities, features) = judge.Engine.Predict(judgedInput, rows.Length, withFeatures: withHeads || multiLabel is not null);
                if (multiLabel is not null)
                {
                    // Each label's decision: the fp32 out-of-fold probability against the int8 features through the same fold head.
                    var (fp32, int8, truth) = MultiLabelRows(multiLabel, rows, features!, classes);
                    judge.MultiCheck!.Add(fp32, int8, truth);
                    judge.Seconds += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
                    continue;
                }
                if (batchFp32 is null && reference is null)
                {
                    batchFp32 = fp32Engine!.PredictProbabilities(input, batch.Count);
                }
                else if (batchFp32 is null)
                {
                    batchFp32 = new float[batchRows.Length * classes];
                    for (var r = 0; r < batchRows.Length; r++)
                    {
                        Softmax(reference!.Logits.AsSpan(batchRows[r] * classes, classes), reference.Temperature, batchFp32.AsSpan(r * classes, classes));
                    }
                }
                var fp32Probabilities = picked is null ? batchFp32 : Rows(batchFp32, classes, picked);
                if (withHeads)
                {
                    int8Probabilities = ThroughFoldHeads(reference!, rows, features!, classes);
                }
                judge.Check.Add(fp32Probabilities, int8Probabilities, classes, [.. rows.Select(r => checkLabels[r])]);
                judge.Seconds += System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalSeconds;
            }
        }, progress, total - checkedIndices.Length, total, cancellationToken).ConfigureAwait(false);

        var summary = served.Summary(labels, fp32Onnx, options, sampledFrom: checkImages.Count, evidence: reference?.Evidence ?? "given images");
        timings.Add(new StepTime($"check on {summary.ValidationImages} images", clock.Elapsed.TotalSeconds - (portableJudged?.Seconds ?? 0)));
        if (portableJudged is null)
        {
            return Served(quantized, fp32Onnx, summary, timings);
        }
        var portableSummary = portableJudged.Summary(labels, fp32Onnx, options, sampledFrom: checkImages.Count, evidence: reference?.Evidence ?? "given images") with
        {
            SampleLimit = Math.Min(options.CheckImages, options.PortableCheckImages),
        };
        timings.Add(new StepTime($"check the 7-bit graph on {portableSummary.ValidationImages} images", portableJudged.Seconds));
        return Served(quantized, fp32Onnx, summary, timings) with
        {
            Portable = !summary.Accepted ? null
                : portableSummary.Accepted ? new PortableGraph(portable!.Onnx, ModelPrecision.Int8, portableSummary)
                : new PortableGraph(fp32Onnx, ModelPrecision.Fp32, portableSummary),
        };
    }

    /// <summary>
    /// The quantiser of the second, 7-bit graph, made beside an 8-bit one so that CPUs without 8-bit dot products serve a
    /// checked graph too (<see cref="ServingGraph.Portable"/>): only when the weight bits were left to the training CPU
    /// (<see cref="PrecisionOptions.Int8WeightBits"/> auto, the quantiser's levels unset) and that CPU chose 8. A plan that
    /// names the bits gets one graph.
    /// </summary>
    internal static Int8QuantizerOptions? PortableQuantizer(PrecisionOptions options) =>
        options is { Int8WeightBits: null, Quantizer.WeightLevels: 0 } && options.Quantizer.ResolveWeightLevels() == Int8QuantizerOptions.FullWeightLevels
            ? options.Quantizer with { WeightLevels = Int8QuantizerOptions.ReducedWeightLevels }
            : null;

    /// <summary>The given rows (each <paramref name="width"/> values) of <paramref name="values"/>, in order.</summary>
    private static float[] Rows(float[] values, int width, int[] rows)
    {
        var picked = new float[rows.Length * width];
        for (var i = 0; i < rows.Length; i++)
        {
            values.AsSpan(rows[i] * width, width).CopyTo(picked.AsSpan(i * width));
        }
        return picked;
    }

    /// <summary>An int8 graph being judged: its session, its check, the check images it is judged on (null: all) and the time its forward passes took.</summary>
    private sealed class Judged(Int8Graph graph, OnnxEngine engine, MultiLabelReference? multiLabel, HashSet<int>? rows) : IDisposable
    {
        public Int8Graph Graph { get; } = graph;

        public HashSet<int>? Rows { get; } = rows;

        public OnnxEngine Engine { get; } = engine;

        public PrecisionCheck Check { get; } = new();

        public MultiLabelPrecisionCheck? MultiCheck { get; } = multiLabel is null ? null : new MultiLabelPrecisionCheck(multiLabel.Thresholds);

        public double Seconds { get; set; }

        /// <summary>The verdict and the manifest's account of it.</summary>
        public QuantizationSummary Summary(IReadOnlyList<string> labels, byte[] fp32Onnx, PrecisionOptions options, int sampledFrom, string evidence)
        {
            var result = MultiCheck?.Overall ?? Check.Result;
            var perLabel = MultiCheck?.PerLabel;
            var accepted = result.Images > 0 && result.AccuracyDropPoints <= options.MaxAccuracyDropPoints + 1e-9
                && (perLabel is null || perLabel.All(l => l.AccuracyDropPoints <= options.MaxAccuracyDropPoints + 1e-9));
            return ServingGraphs.Summary(Graph, result, fp32Onnx, options, accepted,
                validationImages: perLabel is { Count: > 0 } ? perLabel[0].Images : result.Images, // a multi-label check: images, each with a decision per label
                sampledFrom: sampledFrom, sampleLimit: options.CheckImages, evidence: evidence) with
            {
                PerLabel = perLabel is null ? null
                    : [.. perLabel.Select((l, i) => new LabelQuantizationCheck(labels[i], multiLabel!.Thresholds[i], l.Fp32Accuracy, l.Int8Accuracy, l.Top1Agreement))],
            };
        }

        public void Dispose() => Engine.Dispose();
    }

    /// <summary>Each row's int8 features through the probe's fold head that never trained on its image, as probabilities at the calibrated temperature.</summary>
    private static float[] ThroughFoldHeads(HeldOutReference reference, int[] rows, float[] features, int classes)
    {
        var int8Probabilities = new float[rows.Length * classes];
        var width = features.Length / rows.Length;
        if (reference.Heads!.Any(h => h.Weight.Length != classes * width || h.Bias.Length != classes))
        {
            throw new TrainingException(
                $"The int8 check cannot judge this model out-of-fold: its graph's features are {width} wide, but the probe's fold heads read {reference.Heads![0].Weight.Length / Math.Max(1, classes)} features.");
        }
        var logits = new double[classes];
        for (var r = 0; r < rows.Length; r++)
        {
            var head = reference.Heads![reference.HeadOf![rows[r]]];
            var f = features.AsSpan(r * width, width);
            for (var c = 0; c < classes; c++)
            {
                double z = head.Bias[c];
                var w = head.Weight.AsSpan(c * width, width);
                for (var j = 0; j < width; j++)
                {
                    z += w[j] * f[j];
                }
                logits[c] = z;
            }
            Softmax(logits, reference.Temperature, int8Probabilities.AsSpan(r * classes, classes));
        }
        return int8Probabilities;
    }

    /// <summary>
    /// The int8 graph of a head fitted on the int8 backbone's features: quantised with the ranges the feature pass collected
    /// (the same calibration graph and sample, so the same backbone as the features came from), its features of the
    /// verification images compared with those the head was fitted on, and judged by the check already made.
    /// </summary>
    /// <exception cref="TrainingException">The feature pass's calibration does not stand for this graph, or the served graph's features differ.</exception>
    private static ServingGraph FromInt8Features(byte[] fp32Onnx, Int8FeatureEvidence fitted, List<LabeledImage> sample, ImagePreprocessor preprocessor, PrecisionOptions options,
        FeaturePassCalibration? collected)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var graph = CalibrationGraph.Build(fp32Onnx, options.EffectiveQuantizer.FloatStem);
        if (collected is null || !collected.StandsFor(graph, sample, options.EffectiveQuantizer))
        {
            throw new TrainingException("The head was fitted on int8 features, but the int8 calibration they came from is not this model's: refusing to serve an int8 graph the head was not fitted on.");
        }
        var quantized = Int8Quantizer.Quantize(graph, collected.Ranges(options.EffectiveQuantizer.Calibration), collected.Images, [], preprocessor.Config.InputSize, options.EffectiveQuantizer);
        List<StepTime> timings = [new StepTime($"quantise with the ranges of {collected.Images} calibration images from the feature pass", clock.Elapsed.TotalSeconds)];
        clock.Restart();
        using (var engine = new OnnxEngine(quantized.Onnx, new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount }))
        {
            var served = engine.ExtractFeatures(fitted.VerificationInputs, fitted.VerificationImages);
            double scale = 0, worst = 0;
            for (var i = 0; i < served.Length; i++)
            {
                scale = Math.Max(scale, Math.Abs(fitted.VerificationFeatures[i]));
                worst = Math.Max(worst, Math.Abs(served[i] - fitted.VerificationFeatures[i]));
            }
            if (served.Length != fitted.VerificationFeatures.Length || fitted.VerificationImages == 0 || !(worst <= 1e-5 * Math.Max(scale, 1e-12)))
            {
                throw new TrainingException(string.Create(CultureInfo.InvariantCulture,
                    $"The served int8 graph's features of {fitted.VerificationImages} images differ from those the head was fitted on (max |difference| {worst:E2} of {scale:E2}); refusing to serve it."));
            }
        }
        timings.Add(new StepTime($"served graph's features equal to the fitted ones on {fitted.VerificationImages} images", clock.Elapsed.TotalSeconds));
        var result = fitted.Check;
        var accepted = Int8FeatureCheck.Judge(result, options.MaxAccuracyDropPoints).Passed;
        var summary = Summary(quantized, result, fp32Onnx, options, accepted,
            validationImages: result.Images, sampledFrom: fitted.SampledFrom, sampleLimit: options.CalibrationImages, evidence: Int8FeatureCheck.Evidence);
        // The head was fitted on the 8-bit graph's features, so a 7-bit graph would serve features it was not fitted on: CPUs
        // without 8-bit dot products serve the fp32 graph, whose features through the fold heads the check measured too.
        return Served(quantized, fp32Onnx, summary, timings) with
        {
            Portable = accepted && PortableQuantizer(options) is not null ? new PortableGraph(fp32Onnx, ModelPrecision.Fp32, null) : null,
        };
    }

    /// <summary>The manifest's account of an int8 check: the graph made, what it was judged on, the figures and the verdict.</summary>
    internal static QuantizationSummary Summary(Int8Graph quantized, PrecisionComparison result, byte[] fp32Onnx, PrecisionOptions options, bool accepted,
        int validationImages, int sampledFrom, int sampleLimit, string evidence)
    {
        var (disagreeLow, disagreeHigh) = result.DisagreementInterval;
        var (dropLow, dropHigh) = result.AccuracyDropInterval;
        return new QuantizationSummary
        {
            Scheme = quantized.Scheme,
            WeightBits = Int8QuantizerOptions.BitsOf(quantized.WeightLevels),
            FloatLayers = quantized.FloatLayers,
            CalibrationImages = quantized.CalibrationImages,
            ValidationImages = validationImages,
            SampledFrom = sampledFrom,
            SampleLimit = sampleLimit,
            Evidence = evidence,
            Fp32Accuracy = result.Fp32Accuracy,
            Int8Accuracy = result.Int8Accuracy,
            Top1Agreement = result.Top1Agreement,
            DisagreementLow = disagreeLow,
            DisagreementHigh = disagreeHigh,
            AccuracyDropLowPoints = result.Images > 0 ? dropLow : null,
            AccuracyDropHighPoints = result.Images > 0 ? dropHigh : null,
            MaxProbabilityDifference = result.MaxProbabilityDifference,
            MaxAccuracyDropPoints = options.MaxAccuracyDropPoints,
            Accepted = accepted,
            Fp32Bytes = fp32Onnx.Length,
            Int8Bytes = quantized.Onnx.Length,
            CheckedOn = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} on {CpuFeatures.Describe()}",
        };
    }

    /// <summary>The graph served after the check: the int8 graph when it was accepted, else the fp32 graph.</summary>
    private static ServingGraph Served(Int8Graph quantized, byte[] fp32Onnx, QuantizationSummary summary, List<StepTime> timings) =>
        (summary.Accepted ? new ServingGraph(quantized.Onnx, ModelPrecision.Int8, summary) : new ServingGraph(fp32Onnx, ModelPrecision.Fp32, summary)) with { Timings = timings };

    /// <summary>
    /// What head mode's feature pass needs to collect the int8 calibration on the way (<see cref="FeaturePassCalibration"/>):
    /// the sample this step would calibrate on, and the quantiser's settings; null when no int8 graph will be made.
    /// </summary>
    internal static (IReadOnlyList<LabeledImage> Sample, Int8QuantizerOptions Options)? CalibrationRequest(PrecisionOptions options, IReadOnlyList<LabeledImage> trainImages, int seed) =>
        options.Precision == PrecisionChoice.Fp32 ? null : (CalibrationSample(trainImages, options.CalibrationImages, seed), options.EffectiveQuantizer);

    /// <summary>The calibration sample: <paramref name="count"/> (at least 1) of the training images in a seeded random order.</summary>
    internal static List<LabeledImage> CalibrationSample(IReadOnlyList<LabeledImage> trainImages, int count, int seed)
    {
        var random = new Random(seed);
        return [.. trainImages.OrderBy(_ => random.Next()).Take(Math.Max(1, count))];
    }

    /// <summary>
    /// At most <paramref name="limit"/> of the rows, stratified by label: each class gets its share of the limit (largest
    /// remainders first), its rows drawn at random with <paramref name="seed"/>. Ascending indices; every row when they fit.
    /// </summary>
    internal static int[] StratifiedSample(IReadOnlyList<int> labels, int limit, int seed)
    {
        if (labels.Count <= limit)
        {
            return [.. Enumerable.Range(0, labels.Count)];
        }
        var random = new Random(seed);
        var groups = labels.Select((label, index) => (label, index)).GroupBy(x => x.label).OrderBy(g => g.Key)
            .Select(g => g.Select(x => x.index).ToArray()).ToList();
        var exact = groups.Select(g => (double)limit * g.Length / labels.Count).ToArray();
        var quota = exact.Select(e => (int)Math.Floor(e)).ToArray();
        foreach (var g in Enumerable.Range(0, groups.Count).OrderByDescending(g => exact[g] - quota[g]).ThenBy(g => g).Take(limit - quota.Sum()))
        {
            quota[g]++;
        }
        var chosen = new List<int>(limit);
        for (var g = 0; g < groups.Count; g++)
        {
            random.Shuffle(groups[g]);
            chosen.AddRange(groups[g].Take(quota[g]));
        }
        chosen.Sort();
        return [.. chosen];
    }

    /// <summary>
    /// A batch's rows of a multi-label check: the fp32 out-of-fold probabilities, the int8 graph's features of the same images
    /// through each label's fold head that never saw the image (divided by the label's temperature, then the sigmoid), and the truth.
    /// </summary>
    private static (float[] Fp32, float[] Int8, bool[] Truth) MultiLabelRows(MultiLabelReference reference, int[] rows, float[] features, int labels)
    {
        var width = features.Length / rows.Length;
        var fp32 = new float[rows.Length * labels];
        var int8 = new float[rows.Length * labels];
        var truth = new bool[rows.Length * labels];
        for (var r = 0; r < rows.Length; r++)
        {
            var f = features.AsSpan(r * width, width);
            for (var l = 0; l < labels; l++)
            {
                var head = reference.Heads[l][reference.HeadOf[l][rows[r]]];
                if (head.Weight.Length != width)
                {
                    throw new TrainingException($"The int8 check cannot judge this model out-of-fold: its graph's features are {width} wide, but the probes' fold heads read {head.Weight.Length} features.");
                }
                double z = head.Bias[0];
                for (var j = 0; j < width; j++)
                {
                    z += head.Weight[j] * f[j];
                }
                int8[(r * labels) + l] = (float)(1 / (1 + Math.Exp(-z / reference.Temperatures[l])));
                fp32[(r * labels) + l] = (float)reference.Probabilities[(rows[r] * labels) + l];
                truth[(r * labels) + l] = reference.Truth[(rows[r] * labels) + l];
            }
        }
        return (fp32, int8, truth);
    }

    private static void Softmax(ReadOnlySpan<double> logits, double temperature, Span<float> probabilities)
    {
        var max = double.NegativeInfinity;
        foreach (var z in logits)
        {
            max = Math.Max(max, z / temperature);
        }
        double sum = 0;
        for (var c = 0; c < logits.Length; c++)
        {
            sum += Math.Exp((logits[c] / temperature) - max);
        }
        for (var c = 0; c < logits.Length; c++)
        {
            probabilities[c] = (float)(Math.Exp((logits[c] / temperature) - max) / sum);
        }
    }

    private static int LabelIndex(IReadOnlyList<string> labels, string label)
    {
        for (var i = 0; i < labels.Count; i++)
        {
            if (string.Equals(labels[i], label, StringComparison.Ordinal))
            {
                return i;
            }
        }
        throw new ArgumentException($"The validation label \"{label}\" is not one of the model's labels.", nameof(labels));
    }

    /// <summary>Decodes and preprocesses images a batch at a time (in parallel), handing each batch of those that decoded to <paramref name="onBatch"/>.</summary>
    private static async Task ReadAsync(List<LabeledImage> images, ImageDecoder decoder, ImagePreprocessor preprocessor, int batchSize,
        Action<List<float[]>, List<LabeledImage>> onBatch, IProgress<TrainingProgress>? progress, int offset, int total, CancellationToken cancellationToken)
    {
        for (var start = 0; start < images.Count; start += batchSize)
        {
            var batch = images.Skip(start).Take(batchSize).ToList();
            var bytes = new byte[batch.Count][];
            for (var i = 0; i < batch.Count; i++)
            {
                try
                {
                    bytes[i] = await batch[i].ReadAsync(cancellationToken).ConfigureAwait(false);
                }
                catch (IOException)
                {
                    bytes[i] = [];
                }
            }
            var inputs = new float[]?[batch.Count];
            Parallel.For(0, batch.Count, new ParallelOptions { CancellationToken = cancellationToken }, i =>
            {
                try
                {
                    inputs[i] = bytes[i].Length == 0 ? null : preprocessor.DecodeAndPreprocess(decoder, bytes[i]);
                }
                catch (ImageRejectedException)
                {
                    inputs[i] = null;
                }
            });
            var kept = Enumerable.Range(0, batch.Count).Where(i => inputs[i] is not null).ToList();
            if (kept.Count > 0)
            {
                onBatch([.. kept.Select(i => inputs[i]!)], [.. kept.Select(i => batch[i])]);
            }
            progress?.Report(new TrainingProgress(TrainingPhase.Quantization, offset + start + batch.Count, total));
        }
    }
}
