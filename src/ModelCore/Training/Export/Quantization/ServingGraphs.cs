using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Plans;

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

    /// <summary>Training images (a seeded random sample) the activation ranges are calibrated on.</summary>
    [Setting("int8 calibration images")]
    public int CalibrationImages { get; init; } = 128;

    /// <summary>int8 accuracy on the check images may be at most this many points below fp32's.</summary>
    [Setting("int8 accuracy drop allowed (points)")]
    public double MaxAccuracyDropPoints { get; init; } = 0.5;

    [Setting("int8 quantiser")]
    public Int8QuantizerOptions Quantizer { get; init; } = Int8QuantizerOptions.Default;

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
        if (!(MaxAccuracyDropPoints >= 0 && double.IsFinite(MaxAccuracyDropPoints)))
        {
            throw new PlanException("int8 accuracy drop allowed (points)", $"int8 accuracy drop allowed {MaxAccuracyDropPoints}: 0 or more points.");
        }
        Quantizer.Validate();
    }
}

/// <summary>The graph to serve, its precision and, when an int8 graph was made, its check.</summary>
public sealed record ServingGraph(byte[] Onnx, ModelPrecision Precision, QuantizationSummary? Quantization)
{
    /// <summary>Why an int8 graph that was made is not served (its check's figures); null when it is, or none was made.</summary>
    public string? Refusal => Quantization is { Accepted: false } q ? RefusalMessage(q) : null;

    internal static string RefusalMessage(QuantizationSummary q) => string.Create(CultureInfo.InvariantCulture,
        $"the int8 graph's accuracy on the {q.ValidationImages} validation images is {q.Int8Accuracy:P1}, {q.AccuracyDropPoints:F1} points below fp32's {q.Fp32Accuracy:P1} " +
        $"(at most {q.MaxAccuracyDropPoints:0.##} allowed); top-1 agreement {q.Top1Agreement:P1}");
}

/// <summary>
/// Makes the graph a model serves from its verified fp32 export: for int8, calibrates on a sample of the training
/// images, quantises (<see cref="Int8Quantizer"/>), then classifies every check image with both graphs;
/// the int8 graph is kept only when its accuracy is within <see cref="PrecisionOptions.MaxAccuracyDropPoints"/>
/// of fp32's. Images that no longer decode are left out of both counts.
/// </summary>
public static class ServingGraphs
{
    /// <summary>Images decoded and classified at a time during calibration and the check.</summary>
    private const int BatchSize = 16;

    /// <param name="fp32Onnx">The verified fp32 export.</param>
    /// <param name="labels">The model's labels in output order (the check images' labels are looked up there).</param>
    /// <param name="trainImages">The images the model was trained on: the calibration sample is drawn from them.</param>
    /// <param name="checkImages">
    /// The labelled images the check classifies: those the validation metrics were computed on (the validation
    /// split; in head mode, whose metrics are out-of-fold over every image, all of them).
    /// </param>
    /// <param name="preprocessor">The model's preprocessing.</param>
    /// <param name="options">Which precision, and how int8 is made and checked.</param>
    /// <param name="seed">Seeds the calibration sample.</param>
    /// <param name="progress">Progress in <see cref="TrainingPhase.Quantization"/>.</param>
    /// <param name="cancellationToken">Stops between batches.</param>
    public static async Task<ServingGraph> CreateAsync(byte[] fp32Onnx, IReadOnlyList<string> labels, IReadOnlyList<LabeledImage> trainImages, IReadOnlyList<LabeledImage> checkImages,
        ImagePreprocessor preprocessor, PrecisionOptions options, int seed,
        IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(fp32Onnx);
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(trainImages);
        ArgumentNullException.ThrowIfNull(checkImages);
        ArgumentNullException.ThrowIfNull(preprocessor);
        ArgumentNullException.ThrowIfNull(options);
        if (options.Precision == PrecisionChoice.Fp32)
        {
            return new ServingGraph(fp32Onnx, ModelPrecision.Fp32, null);
        }
        var decoder = new ImageDecoder();
        var random = new Random(seed);
        var sample = trainImages.OrderBy(_ => random.Next()).Take(Math.Max(1, options.CalibrationImages)).ToList();
        var total = sample.Count + checkImages.Count;
        var calibration = new List<float[]>();
        await ReadAsync(sample, decoder, preprocessor, BatchSize, (batch, _) => calibration.AddRange(batch), progress, 0, total, cancellationToken).ConfigureAwait(false);
        if (calibration.Count == 0)
        {
            throw new TrainingException("No training image could be read to calibrate the int8 graph.");
        }
        var quantized = Int8Quantizer.Quantize(fp32Onnx, calibration, preprocessor.Config.InputSize, options.Quantizer);
        calibration.Clear();

        var engineOptions = new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount };
        using var fp32Engine = new OnnxEngine(fp32Onnx, engineOptions);
        using var int8Engine = new OnnxEngine(quantized.Onnx, engineOptions);
        var check = new PrecisionCheck(fp32Engine, int8Engine);
        var length = preprocessor.InputLength;
        await ReadAsync(checkImages, decoder, preprocessor, BatchSize, (batch, images) =>
        {
            var input = new float[batch.Count * length];
            for (var i = 0; i < batch.Count; i++)
            {
                batch[i].CopyTo(input.AsSpan(i * length));
            }
            check.Add(input, batch.Count, [.. images.Select(im => LabelIndex(labels, im.Label))]);
        }, progress, sample.Count, total, cancellationToken).ConfigureAwait(false);

        var result = check.Result;
        var accepted = result.Images > 0 && result.AccuracyDropPoints <= options.MaxAccuracyDropPoints + 1e-9;
        var summary = new QuantizationSummary
        {
            Scheme = options.Quantizer.Describe(),
            CalibrationImages = quantized.CalibrationImages,
            ValidationImages = result.Images,
            Fp32Accuracy = result.Fp32Accuracy,
            Int8Accuracy = result.Int8Accuracy,
            Top1Agreement = result.Top1Agreement,
            MaxProbabilityDifference = result.MaxProbabilityDifference,
            MaxAccuracyDropPoints = options.MaxAccuracyDropPoints,
            Accepted = accepted,
            Fp32Bytes = fp32Onnx.Length,
            Int8Bytes = quantized.Onnx.Length,
            CheckedOn = $"ONNX Runtime {OrtEnv.Instance().GetVersionString()} on {CpuFeatures.Describe()}",
        };
        return accepted ? new ServingGraph(quantized.Onnx, ModelPrecision.Int8, summary) : new ServingGraph(fp32Onnx, ModelPrecision.Fp32, summary);
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
    private static async Task ReadAsync(IReadOnlyList<LabeledImage> images, ImageDecoder decoder, ImagePreprocessor preprocessor, int batchSize,
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
