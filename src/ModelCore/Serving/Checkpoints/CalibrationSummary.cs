namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// How the served probabilities were calibrated (manifest <c>training.calibration</c>): temperature scaling (one scalar T,
/// probabilities softmax(z / T)) fitted on held-out predictions, with the expected calibration error (15 bins) and the mean
/// negative log-likelihood before and after. Every model has one: the head's weights and bias are divided by T. T is 1
/// unless the fitted T lowered the held-out (cross-fitted) log-loss (<see cref="HeldOutNll"/> below <see cref="NllBefore"/>);
/// a fit that ran to a bound of its search range must also not raise the held-out ECE.
/// </summary>
public sealed record CalibrationSummary
{
    /// <summary>The temperature served (the head's weights are divided by it).</summary>
    public double Temperature { get; init; }

    /// <summary>The temperature that minimised the log-loss of the predictions; served only when <see cref="TemperatureKept"/>.</summary>
    public double? FittedTemperature { get; init; }

    /// <summary>True when the fitted temperature ran to a bound of its search range (0.05..20): no interior optimum.</summary>
    public bool FitAtBound { get; init; }

    /// <summary>Mean log-loss of each fold's predictions at the temperature fitted on the other folds' (cross-fitted), against <see cref="NllBefore"/> at T = 1.</summary>
    public double? HeldOutNll { get; init; }

    /// <summary>Whether the fitted temperature is served (else T = 1).</summary>
    public bool TemperatureKept { get; init; } = true;

    /// <summary>What was served and why, in one sentence.</summary>
    public string? Decision { get; init; }

    public double EceBefore { get; init; }

    public double EceAfter { get; init; }

    public double NllBefore { get; init; }

    public double NllAfter { get; init; }

    /// <summary>Images whose predictions the temperature was fitted on.</summary>
    public int Images { get; init; }

    /// <summary>Which predictions: <c>out-of-fold</c> (a probe's cross-validation) or <c>validation</c> (the validation split).</summary>
    public string Evidence { get; init; } = "";
}
