using Google.Protobuf;
using Onnx;
using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>How an int8 graph is made. The defaults are those measured best (docs/benchmarks.md, "int8").</summary>
public sealed record Int8QuantizerOptions
{
    /// <summary>
    /// Largest magnitude of a quantised weight. 63 ("reduce range", 7 bits): ONNX Runtime's integer kernels on
    /// x86 without VNNI (AVX2, AVX-512 before VNNI) add uint8 x int8 products in pairs into 16 bits, which
    /// overflows with full-range weights; with 127 the stem alone took top-1 agreement with fp32 from 98 % to 47 %
    /// on such a machine. A model is published once and served on whatever CPU the instance has, so 63.
    /// </summary>
    [Setting("int8 weight levels")]
    public int WeightLevels { get; init; } = 63;

    /// <summary>How activation ranges are chosen from the calibration images (default: the least-error range).</summary>
    [Setting("int8 activation ranges")]
    public CalibrationMethod Calibration { get; init; } = CalibrationMethod.MinimumError;

    /// <summary>
    /// Leave the first convolution (the stem, reading the preprocessed pixels) in float: quantising the
    /// mean-subtracted pixels to uint8 cost the most agreement of any tensor, for about 6 % of the compute.
    /// </summary>
    [Setting("int8 stem in float")]
    public bool FloatStem { get; init; } = true;

    /// <exception cref="PlanException">A value out of range, named.</exception>
    public void Validate()
    {
        if (WeightLevels is < 1 or > 127)
        {
            throw new PlanException("int8 weight levels", $"int8 weight levels {WeightLevels}: 1..127.");
        }
        if (!Enum.IsDefined(Calibration))
        {
            throw new PlanException("int8 activation ranges", $"int8 activation ranges {Calibration}: minMax or minimumError.");
        }
    }

    public static Int8QuantizerOptions Default { get; } = new();

    /// <summary>One line for manifests and reports.</summary>
    public string Describe() =>
        $"QDQ: per-channel symmetric int8 weights ({(WeightLevels == 127 ? "8" : $"{Math.Log2(WeightLevels + 1):F0}")}-bit range), uint8 activations ({(Calibration == CalibrationMethod.MinimumError ? "least-error" : "min/max")} calibration); " +
        $"{(FloatStem ? "stem, " : "")}head and softmax in float";
}

/// <summary>An int8 graph and what went into it.</summary>
public sealed record Int8Graph(byte[] Onnx, int CalibrationImages, int QuantizedConvolutions, int QuantizedTensors);

/// <summary>
/// Static int8 quantisation of an exported fp32 graph, in C# over the graph this product writes (no Python tool):
/// BatchNorm folded into the convolutions, every Conv weight int8 (symmetric, one scale per output channel),
/// activations uint8 with scales calibrated on preprocessed training images, in ONNX's QDQ form, which ONNX
/// Runtime fuses into integer kernels (QLinearConv, QLinearAdd, uint8 MaxPool). The head and softmax stay float.
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
        if (options.WeightLevels is < 1 or > 127)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.WeightLevels, "WeightLevels must be 1..127.");
        }
        if (calibrationInputs.Count == 0)
        {
            throw new ArgumentException("Calibration needs at least one preprocessed image.", nameof(calibrationInputs));
        }
        var model = ModelProto.Parser.ParseFrom(fp32Onnx);
        BatchNormFolding.Fold(model.Graph);
        var plan = QdqPlan.Build(model.Graph, options.FloatStem);
        var ranges = ActivationCalibrator.Calibrate(model, plan.Quantized, calibrationInputs, inputSize, options.Calibration);
        QdqRewriter.Apply(model.Graph, plan, ranges, options.WeightLevels);
        return new Int8Graph(model.ToByteArray(), calibrationInputs.Count, plan.Convolutions.Count, plan.Quantized.Count + plan.Inherited.Count);
    }
}
