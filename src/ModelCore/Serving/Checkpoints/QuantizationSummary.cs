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
/// The int8 check of a model, recorded in its manifest whenever an int8 graph was made: on a bounded, stratified sample of
/// images the head did not train on (<see cref="Evidence"/>: a probe's out-of-fold images, or the validation split), the
/// int8 graph's answers against the fp32 model's (those training already computed, not the fp32 graph run again); the
/// int8 graph is served only when its accuracy is at most <see cref="MaxAccuracyDropPoints"/> below fp32's
/// (<see cref="Accepted"/>), with the spread of that figure recorded beside it.
/// </summary>
public sealed record QuantizationSummary
{
    /// <summary>What was quantised and how, in one line.</summary>
    public required string Scheme { get; init; }

    /// <summary>
    /// Bits of the weights' range: 8 (made on a CPU with VNNI or Arm's dot product, whose integer kernels add products in
    /// 32 bits) or 7 (AVX2's kernels add pairs of products in 16 bits, which full-range weights overflow). An 8-bit graph
    /// served on a CPU without those instructions may lose accuracy: serving says so when it loads one there.
    /// </summary>
    public int? WeightBits { get; init; }

    /// <summary>Convolutions besides the stem left in float, chosen by their measured share of the int8 feature error.</summary>
    public IReadOnlyList<FloatLayer>? FloatLayers { get; init; }

    /// <summary>Training images the activation ranges were calibrated on.</summary>
    public required int CalibrationImages { get; init; }

    /// <summary>Labelled images the check compared both precisions on (the sample; see <see cref="SampledFrom"/>).</summary>
    public required int ValidationImages { get; init; }

    /// <summary>Images the sample was drawn from (every image the evidence holds); at most <see cref="SampleLimit"/> are checked, stratified by class.</summary>
    public int? SampledFrom { get; init; }

    /// <summary>The most images the check classifies.</summary>
    public int? SampleLimit { get; init; }

    /// <summary>
    /// Which images and fp32 answers: <c>out-of-fold</c> (a probe's: each image through the fold head that never trained
    /// on it, for both precisions), <c>validation</c> (the validation split, through the served head), or <c>given images</c>
    /// (both graphs run on images the caller chose).
    /// </summary>
    public string? Evidence { get; init; }

    /// <summary>95 % Wilson interval of the fraction of checked images whose top-1 label differs between int8 and fp32.</summary>
    public double? DisagreementLow { get; init; }

    public double? DisagreementHigh { get; init; }

    /// <summary>95 % interval of <see cref="AccuracyDropPoints"/> (paired, normal approximation), in points.</summary>
    public double? AccuracyDropLowPoints { get; init; }

    public double? AccuracyDropHighPoints { get; init; }

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

    /// <summary>
    /// A multi-label model's check, per label: its decisions at its threshold under both precisions on the same images. The
    /// int8 graph is served only when every label's accuracy is at most <see cref="MaxAccuracyDropPoints"/> below fp32's;
    /// the summary's accuracies and <see cref="Top1Agreement"/> are then over every (image, label) decision. Null (absent)
    /// for a multi-class model.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<LabelQuantizationCheck>? PerLabel { get; init; }

    /// <summary>fp32 accuracy minus int8 accuracy, in percentage points (negative when int8 did better).</summary>
    public double AccuracyDropPoints => (Fp32Accuracy - Int8Accuracy) * 100;
}

/// <summary>One label's int8 check in a multi-label model: how often its decision (at its threshold) is right under each precision, and how often they agree.</summary>
public sealed record LabelQuantizationCheck(string Label, double Threshold, double Fp32Accuracy, double Int8Accuracy, double Agreement)
{
    /// <summary>fp32 accuracy minus int8 accuracy of this label's decisions, in percentage points.</summary>
    public double AccuracyDropPoints => (Fp32Accuracy - Int8Accuracy) * 100;
}
