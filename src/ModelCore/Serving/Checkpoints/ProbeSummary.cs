namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// How a linear probe was fitted (manifest <c>training.probe</c>: head mode's head, a fine-tune's refit): the
/// cross-validated L2 strength and what the final model was fitted on; the temperature it fitted on its out-of-fold
/// logits, and the calibration before and after, are the model's calibration (<c>training.calibration</c>,
/// <see cref="CalibrationSummary"/>). The validation metrics of such a model are out-of-fold: every image was
/// scored by a model that had not seen it, and the final model was then refitted on all of them.
/// </summary>
public sealed record ProbeSummary
{
    /// <summary>Stratified folds of the cross-validation.</summary>
    public int Folds { get; init; }

    /// <summary>The chosen L2 strength.</summary>
    public double Lambda { get; init; }

    /// <summary>The sweep: out-of-fold accuracy and loss per L2 strength.</summary>
    public IReadOnlyList<ProbeGridPoint> Grid { get; init; } = [];

    /// <summary>True when the loss was class-weighted (the largest class has over 3x the images of the smallest).</summary>
    public bool ClassWeighted { get; init; }

    /// <summary>True when the features of horizontally flipped images were added as training rows.</summary>
    public bool FlipFeatures { get; init; }

    /// <summary>
    /// The pooled stages the head reads, in network order (<c>layer3+layer4</c>); where the probe chose <c>layer4</c> alone,
    /// the served head still takes every pooled stage and its weights on the others are zero. Null in older manifests.
    /// </summary>
    public string? Features { get; init; }

    /// <summary>The feature sets cross-validated to choose <see cref="Features"/> and <see cref="FlipFeatures"/>; empty when only one was tried.</summary>
    public IReadOnlyList<FeatureCandidate> FeatureChoices { get; init; } = [];

    /// <summary>
    /// Which backbone's features the head was fitted on: <c>int8</c> (the int8 backbone the served int8 graph runs, so the head
    /// was fitted on exactly what is served) or <c>fp32</c>. Null in older manifests (fp32).
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
    public string? FeaturePrecision { get; init; }

    /// <summary>Images the final model was fitted on (every labelled image that decoded).</summary>
    public int Images { get; init; }

    /// <summary>Feature rows of the final fit (images, twice with flipped copies).</summary>
    public int Rows { get; init; }

    /// <summary>L-BFGS iterations of the final fit and whether it converged.</summary>
    public int Iterations { get; init; }

    public bool Converged { get; init; }

    /// <summary>Seconds of the cross-validation, temperature fit and refit (features excluded).</summary>
    public double Seconds { get; init; }
}
