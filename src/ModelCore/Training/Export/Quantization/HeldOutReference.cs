using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>A linear head on a graph's features: logits = <see cref="Weight"/> (classes x features, row-major) f + <see cref="Bias"/>.</summary>
public sealed record LinearWeights(float[] Weight, float[] Bias);

/// <summary>
/// What the int8 graph is judged against, already computed by training, so that the fp32 graph does not run again:
/// labelled images the head did NOT train on and the fp32 model's logits on them. For a linear probe these are its
/// out-of-fold logits, each from the fold head that never saw the image (<see cref="Heads"/>): the int8 graph's
/// features of an image go through that same fold head, so both precisions are judged out-of-sample. Otherwise
/// (the validation split of an epoch fit) they are the served head's logits, compared with the int8 graph's output.
/// </summary>
public sealed record HeldOutReference
{
    public required IReadOnlyList<LabeledImage> Images { get; init; }

    /// <summary>Each image's label, as an index into the model's labels.</summary>
    public required IReadOnlyList<int> Labels { get; init; }

    /// <summary>The fp32 logits of each image (n x classes, row-major), before temperature scaling.</summary>
    public required double[] Logits { get; init; }

    /// <summary>The temperature the served head divides by: probabilities are compared at it.</summary>
    public double Temperature { get; init; } = 1;

    /// <summary>The heads on the graph's features that gave <see cref="Logits"/> (a probe's fold heads, at T = 1); null: the served head.</summary>
    public IReadOnlyList<LinearWeights>? Heads { get; init; }

    /// <summary>With <see cref="Heads"/>: the head of each image.</summary>
    public IReadOnlyList<int>? HeadOf { get; init; }

    /// <summary>Where the logits come from: <c>out-of-fold</c> or <c>validation</c>.</summary>
    public required string Evidence { get; init; }

    /// <summary>A multi-label model's evidence: the check then judges each label's decision at its threshold; null for a multi-class model.</summary>
    public MultiLabelReference? MultiLabel { get; init; }

    /// <summary>
    /// Set when the head was fitted on the int8 backbone's features and checked there (<see cref="PrecisionOptions.Int8Features"/>):
    /// the int8 step then quantises with the feature pass's ranges, verifies the served graph's features, and does not check again.
    /// </summary>
    public Int8FeatureEvidence? Int8Features { get; init; }
}

/// <summary>
/// A head fitted on the int8 backbone's features, and its int8 check already made on the calibration images out-of-fold
/// (<see cref="Check"/>: the fold heads on their fp32 against their int8 features).
/// </summary>
/// <param name="Check">The comparison.</param>
/// <param name="SampledFrom">The images the probe was cross-validated on (the check's images are those of the calibration sample among them).</param>
/// <param name="VerificationInputs">Preprocessed images (<paramref name="VerificationImages"/> of them) whose int8 features the head was fitted on.</param>
/// <param name="VerificationFeatures">Those features: the served int8 graph must compute the same.</param>
/// <param name="VerificationImages">Images in <paramref name="VerificationInputs"/>.</param>
public sealed record Int8FeatureEvidence(PrecisionComparison Check, int SampledFrom, float[] VerificationInputs, float[] VerificationFeatures, int VerificationImages);

/// <summary>
/// A multi-label model's out-of-fold evidence for the int8 check: every image's calibrated fp32 probability of each label (from
/// that label's fold head that never saw it), the truth and each label's threshold; the int8 graph's features of an image go
/// through the same fold head, so each label's decision is compared out-of-sample under both precisions.
/// </summary>
public sealed record MultiLabelReference
{
    /// <summary>n x labels, row-major: the fp32 out-of-fold probabilities (after each label's temperature).</summary>
    public required double[] Probabilities { get; init; }

    /// <summary>n x labels, row-major: whether image i carries label l.</summary>
    public required bool[] Truth { get; init; }

    public required IReadOnlyList<double> Thresholds { get; init; }

    /// <summary>Each label's temperature (its fold heads' logits are divided by it before the sigmoid).</summary>
    public required IReadOnlyList<double> Temperatures { get; init; }

    /// <summary>Per label, each fold's one-row head on the graph's features.</summary>
    public required IReadOnlyList<IReadOnlyList<LinearWeights>> Heads { get; init; }

    /// <summary>Per label, the fold of each image.</summary>
    public required IReadOnlyList<int[]> HeadOf { get; init; }
}
