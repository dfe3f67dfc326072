namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// A convolution an int8 graph keeps in float, and why: leaving it alone removed the largest share of the int8 graph's
/// feature error on the calibration images (error: sum of squared feature differences from fp32 over the sum of squared
/// fp32 features).
/// </summary>
/// <param name="Output">The convolution's output tensor in the fp32 graph (its name).</param>
/// <param name="ErrorAllQuantized">Relative feature error with every convolution but the stem quantised.</param>
/// <param name="ErrorWithItFloat">The same with this convolution left in float.</param>
public sealed record FloatLayer(string Output, double ErrorAllQuantized, double ErrorWithItFloat)
{
    /// <summary>The share of the error this convolution's quantisation caused (1 - with / all).</summary>
    public double ErrorShare => ErrorAllQuantized > 0 ? 1 - (ErrorWithItFloat / ErrorAllQuantized) : 0;
}
