using Google.Protobuf;
using ServerlessClassifier.ModelCore.Checkpoints;
using Onnx;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>How an int8 graph is made. The defaults are those measured best (docs/benchmarks.md, "int8").</summary>
public sealed record Int8QuantizerOptions
{
    /// <summary>Largest weight magnitude on a CPU without 8-bit dot products (7 bits, "reduce range").</summary>
    public const int ReducedWeightLevels = 63;

    /// <summary>Largest weight magnitude with 8-bit dot products (full 8 bits).</summary>
    public const int FullWeightLevels = 127;

    /// <summary>
    /// Largest magnitude of a quantised weight; 0 (the default): chosen for the CPU that makes the graph. ONNX Runtime's
    /// integer kernels on x86 without VNNI (AVX2, AVX-512 before VNNI) add uint8 x int8 products in pairs into 16 bits,
    /// which overflows with full-range weights (with 127 the stem alone took top-1 agreement with fp32 from 98 % to 47 %
    /// on such a machine), so there 63 (7 bits); with VNNI (or Arm's dot product) products add in 32 bits, so 127. The
    /// manifest records which (<see cref="Checkpoints.QuantizationSummary.WeightBits"/>), and serving warns when an
    /// 8-bit graph runs on a CPU without those instructions. Users choose for the CPU that will serve the graph with
    /// <see cref="PrecisionOptions.Int8WeightBits"/> (8 or 7); this lower-level setting also takes other levels (tests).
    /// </summary>
    [Setting("int8 weight levels")]
    public int WeightLevels { get; init; }

    /// <summary>How activation ranges are chosen from the calibration images (default: the least-error range).</summary>
    [Setting("int8 activation ranges")]
    public CalibrationMethod Calibration { get; init; } = CalibrationMethod.MinimumError;

    /// <summary>
    /// Leave the first convolution (the stem, reading the preprocessed pixels) in float: quantising the
    /// mean-subtracted pixels to uint8 cost the most agreement of any tensor, for about 6 % of the compute.
    /// </summary>
    [Setting("int8 stem in float")]
    public bool FloatStem { get; init; } = true;

    /// <summary>
    /// At most this many further convolutions stay float, chosen by measured sensitivity (<see cref="LayerSensitivity"/>):
    /// those whose quantisation costs the most of the int8 graph's feature error on the calibration images. Default 0
    /// (off): on the default backbone with 8-bit weights no convolution's float copy removed even 10 % of that error
    /// (measured shares -37 % to +5 %: the layers' errors partly cancel), while the search costs a graph and a session per
    /// convolution (docs/benchmarks-accuracy.md, "int8").
    /// </summary>
    [Setting("int8 float layers at most")]
    public int MaxFloatLayers { get; init; }

    /// <summary>Calibration images the sensitivity of each convolution is measured on.</summary>
    [Setting("int8 sensitivity images")]
    public int SensitivityImages { get; init; } = 8;

    /// <exception cref="PlanException">A value out of range, named.</exception>
    public void Validate()
    {
        if (WeightLevels is < 0 or > 127)
        {
            throw new PlanException("int8 weight levels", $"int8 weight levels {WeightLevels}: 1..127, or 0 to choose for the CPU (127 with VNNI, else 63).");
        }
        if (!Enum.IsDefined(Calibration))
        {
            throw new PlanException("int8 activation ranges", $"int8 activation ranges {Calibration}: minMax, minimumError or percentile.");
        }
        if (MaxFloatLayers is < 0 or > 64)
        {
            throw new PlanException("int8 float layers at most", $"int8 float layers at most {MaxFloatLayers}: 0..64.");
        }
        if (SensitivityImages < 1)
        {
            throw new PlanException("int8 sensitivity images", $"int8 sensitivity images {SensitivityImages}: at least 1.");
        }
    }

    public static Int8QuantizerOptions Default { get; } = new();

    /// <summary>The weight levels used on this CPU: <see cref="WeightLevels"/>, or the CPU's choice when it is 0.</summary>
    public int ResolveWeightLevels() => WeightLevels != 0 ? WeightLevels : CpuFeatures.HasInt8DotProduct ? FullWeightLevels : ReducedWeightLevels;

    /// <summary>
    /// The signed bits that hold weights of at most <paramref name="weightLevels"/> in magnitude: 127 (-127..127) is 8 bits,
    /// 63 (-63..63) is 7. (Until issue 31 the manifest recorded 63 levels as 6 bits: log2(64) without the sign bit.)
    /// </summary>
    public static int BitsOf(int weightLevels) => (int)Math.Ceiling(Math.Log2(weightLevels + 1)) + 1;

    /// <summary>One line for manifests and reports.</summary>
    public string Describe(int weightLevels, IReadOnlyCollection<string> floatLayers) =>
        $"QDQ: per-channel symmetric int8 weights ({BitsOf(weightLevels)}-bit range), uint8 activations ({CalibrationName(Calibration)} calibration); " +
        $"{(FloatStem ? "stem, " : "")}{(floatLayers.Count > 0 ? $"{floatLayers.Count} most sensitive convolution{(floatLayers.Count == 1 ? "" : "s")}, " : "")}head and softmax in float";

    private static string CalibrationName(CalibrationMethod method) => method switch
    {
        CalibrationMethod.MinimumError => "least-error",
        CalibrationMethod.Percentile => "99.99th-percentile",
        _ => "min/max",
    };
}

/// <summary>An int8 graph and what went into it.</summary>
/// <param name="WeightLevels">Largest quantised weight magnitude used (127: 8 bits, 63: 7 bits).</param>
/// <param name="FloatLayers">The convolutions (besides the stem) left in float, with their measured sensitivity.</param>
/// <param name="Scheme">One line for manifests and reports.</param>
public sealed record Int8Graph(byte[] Onnx, int CalibrationImages, int QuantizedConvolutions, int QuantizedTensors, int WeightLevels = Int8QuantizerOptions.ReducedWeightLevels,
    IReadOnlyList<FloatLayer>? FloatLayers = null, string Scheme = "");

/// <summary>
/// Static int8 quantisation of an exported fp32 graph, in C# over the graph this product writes (no Python tool):
/// BatchNorm folded into the convolutions, every Conv weight int8 (symmetric, one scale per output channel),
/// activations uint8 with scales calibrated on preprocessed training images, in ONNX's QDQ form, which ONNX
/// Runtime fuses into integer kernels (QLinearConv, QLinearAdd, uint8 MaxPool). The head and softmax stay float,
/// and so do the stem and the few convolutions whose quantisation measurably costs the most (<see cref="LayerSensitivity"/>).
/// It reads the graph's structure (Conv, BatchNormalization, Relu, Add, MaxPool), not an architecture table,
/// so every backbone the exporter writes is quantised the same way.
/// </summary>
public static class Int8Quantizer
{
    public static Int8Graph Quantize(byte[] fp32Onnx, IReadOnlyList<float[]> calibrationInputs, int inputSize, Int8QuantizerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(fp32Onnx);
        ArgumentNullException.ThrowIfNull(calibrationInputs);
        options ??= Int8QuantizerOptions.Default;
        if (options.WeightLevels is < 0 or > 127)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.WeightLevels, "WeightLevels must be 0 (the CPU's choice) or 1..127.");
        }
        if (calibrationInputs.Count == 0)
        {
            throw new ArgumentException("Calibration needs at least one preprocessed image.", nameof(calibrationInputs));
        }
        var graph = CalibrationGraph.Build(fp32Onnx, options.FloatStem);
        return Quantize(graph, ActivationCalibrator.Calibrate(graph, calibrationInputs, inputSize, options.Calibration), calibrationInputs.Count, calibrationInputs, inputSize, options);
    }

    /// <summary>
    /// The int8 graph of <paramref name="graph"/> with activation ranges already calibrated on <paramref name="calibrationImages"/>
    /// images; <paramref name="calibrationInputs"/> (the preprocessed images, at least <see cref="Int8QuantizerOptions.SensitivityImages"/>)
    /// are needed only when <see cref="Int8QuantizerOptions.MaxFloatLayers"/> asks for the sensitivity search.
    /// </summary>
    internal static Int8Graph Quantize(CalibrationGraph graph, Dictionary<string, ActivationRange> ranges, int calibrationImages, IReadOnlyList<float[]> calibrationInputs, int inputSize,
        Int8QuantizerOptions options)
    {
        var levels = options.ResolveWeightLevels();
        var model = graph.Folded;
        var floatConvs = CalibrationGraph.FloatStem(model, options.FloatStem);
        var full = QdqPlan.Build(model.Graph, floatConvs);
        if (!full.Quantized.SequenceEqual(graph.Tensors, StringComparer.Ordinal))
        {
            throw new InvalidOperationException("The calibrated tensors are not those the quantisation plan quantises.");
        }
        if (options.MaxFloatLayers > 0 && full.Convolutions.Count > 1 && calibrationInputs.Count == 0)
        {
            throw new ArgumentException("The sensitivity search needs the calibration images.", nameof(calibrationInputs));
        }
        var sensitive = options.MaxFloatLayers > 0 && full.Convolutions.Count > 1
            ? LayerSensitivity.Choose(model, floatConvs, ranges, levels, [.. calibrationInputs.Take(options.SensitivityImages)], inputSize, options.MaxFloatLayers)
            : [];
        floatConvs.UnionWith(sensitive.Select(l => l.Output));
        var quantized = model.Clone();
        var plan = QdqPlan.Build(quantized.Graph, floatConvs);
        QdqRewriter.Apply(quantized.Graph, plan, ranges, levels);
        return new Int8Graph(quantized.ToByteArray(), calibrationImages, plan.Convolutions.Count, plan.Quantized.Count + plan.Inherited.Count, levels, sensitive,
            options.Describe(levels, sensitive.Select(l => l.Output).ToList()));
    }
}
