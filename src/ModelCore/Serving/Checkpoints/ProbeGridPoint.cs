namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>One point of the linear probe's cross-validated L2 sweep.</summary>
/// <param name="Lambda">L2 strength (on standardised features, with the mean cross-entropy).</param>
/// <param name="Accuracy">Out-of-fold accuracy.</param>
/// <param name="Loss">Out-of-fold mean negative log-likelihood (before temperature scaling).</param>
public sealed record ProbeGridPoint(double Lambda, double Accuracy, double Loss);
