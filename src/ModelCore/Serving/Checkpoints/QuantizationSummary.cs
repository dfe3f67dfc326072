namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>The numeric precision of a model's served ONNX graph.</summary>
public enum ModelPrecision
{
    /// <summary>32-bit float throughout (the exported graph, checked against TorchSharp).</summary>
    Fp32,

    /// <summary>int8 weights and uint8 activations (QDQ), made from the fp32 graph and checked against it.</summary>
#pragma warning disable CA1720 // "int8" is the precision's name in ONNX and every runtime, not a C# type name.
    Int8,
#pragma warning restore CA1720
}

/// <summary>
/// The int8 check of a model, recorded in its manifest whenever an int8 graph was made: the int8 graph and the fp32
/// graph it came from both classified every validation image; the int8 graph is served only when its accuracy is
/// at most <see cref="MaxAccuracyDropPoints"/> below fp32's (<see cref="Accepted"/>).
/// </summary>
public sealed record QuantizationSummary
{
    /// <summary>What was quantised and how, in one line.</summary>
    public required string Scheme { get; init; }

    /// <summary>Training images the activation ranges were calibrated on.</summary>
    public required int CalibrationImages { get; init; }

    /// <summary>
    /// Labelled images both graphs classified: those the validation metrics come from (the validation split; in head
    /// mode, whose metrics are out-of-fold over every image, all of them).
    /// </summary>
    public required int ValidationImages { get; init; }

    public required double Fp32Accuracy { get; init; }

    public required double Int8Accuracy { get; init; }

    /// <summary>Fraction of validation images whose top-1 label is the same under both graphs.</summary>
    public required double Top1Agreement { get; init; }

    /// <summary>Largest |p_int8 - p_fp32| over every class of every validation image.</summary>
    public required double MaxProbabilityDifference { get; init; }

    /// <summary>The limit: int8 accuracy may be at most this many percentage points below fp32's.</summary>
    public required double MaxAccuracyDropPoints { get; init; }

    /// <summary>Whether the int8 graph met the limit (and so may be served).</summary>
    public required bool Accepted { get; init; }

    public required long Fp32Bytes { get; init; }

    public required long Int8Bytes { get; init; }

    /// <summary>The runtime and CPU the check ran on (integer kernels differ between CPUs).</summary>
    public string? CheckedOn { get; init; }

    /// <summary>fp32 accuracy minus int8 accuracy, in percentage points (negative when int8 did better).</summary>
    public double AccuracyDropPoints => (Fp32Accuracy - Int8Accuracy) * 100;
}
