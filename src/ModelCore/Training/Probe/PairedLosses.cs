using System.Globalization;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// The mean and standard error of a paired per-image difference of log-losses (two models on the same images): the rule that
/// tells a real difference from the noise of a small held-out set. The linear probe's L2 sweep stops when the loss has
/// clearly risen; the epoch loop keeps a later epoch only when it is clearly below the start.
/// </summary>
public readonly record struct PairedLosses(double Mean, double StandardError, int Images)
{
    /// <summary>How many standard errors of the paired difference make a difference clear (about a 2.5 % one-sided test).</summary>
    public const double ClearStandardErrors = 2;

    /// <summary>The margin <see cref="Mean"/> must exceed to be clear: <see cref="ClearStandardErrors"/> standard errors.</summary>
    public double Margin => ClearStandardErrors * StandardError;

    /// <summary>Whether <see cref="Mean"/> is above zero by more than <see cref="Margin"/>; never with fewer than 2 images.</summary>
    public bool ClearlyPositive => Images >= 2 && Mean > Margin;

    /// <summary>Per image, <paramref name="higher"/>'s loss minus <paramref name="lower"/>'s (the same images, in the same order).</summary>
    public static PairedLosses Of(IReadOnlyList<double> higher, IReadOnlyList<double> lower)
    {
        ArgumentNullException.ThrowIfNull(higher);
        ArgumentNullException.ThrowIfNull(lower);
        if (higher.Count != lower.Count)
        {
            throw new ArgumentException($"{higher.Count} losses against {lower.Count}: a paired difference needs the same images.", nameof(lower));
        }
        var n = higher.Count;
        if (n == 0)
        {
            return new PairedLosses(0, 0, 0);
        }
        var differences = new double[n];
        for (var i = 0; i < n; i++)
        {
            differences[i] = higher[i] - lower[i];
        }
        var mean = differences.Average();
        var sd = n < 2 ? 0 : Math.Sqrt(differences.Sum(d => (d - mean) * (d - mean)) / (n - 1));
        return new PairedLosses(mean, sd / Math.Sqrt(n), n);
    }

    /// <summary>"0.080 ± 0.030 (2 SE: 0.060)": the difference, its standard error and the margin it must exceed.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Mean:F4} ± {StandardError:F4} ({ClearStandardErrors:G} SE: {Margin:F4})");
}
