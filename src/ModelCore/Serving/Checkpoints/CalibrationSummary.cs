namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// How the served probabilities were calibrated (manifest <c>training.calibration</c>): temperature scaling (one scalar T,
/// probabilities softmax(z / T)) fitted on held-out predictions, with the expected calibration error (15 bins) and the mean
/// negative log-likelihood before and after. Every model has one: the head's weights and bias are divided by T.
/// </summary>
public sealed record CalibrationSummary
{
    public double Temperature { get; init; }

    public double EceBefore { get; init; }

    public double EceAfter { get; init; }

    public double NllBefore { get; init; }

    public double NllAfter { get; init; }

    /// <summary>Images whose predictions the temperature was fitted on.</summary>
    public int Images { get; init; }

    /// <summary>Which predictions: <c>out-of-fold</c> (a probe's cross-validation) or <c>validation</c> (the validation split).</summary>
    public string Evidence { get; init; } = "";
}
