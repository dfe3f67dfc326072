using ServerlessClassifier.ModelCore.Features;
namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// Per-feature mean and standard deviation of training rows, so that the probe sees (x - mean) / std.
/// A feature that is (nearly) constant keeps std 1, so it stays near 0 instead of blowing up.
/// <see cref="Fold"/> turns a linear map on standardised features into one on raw features, which is
/// how serving stays unchanged: the exported head reads the backbone's features as before.
/// </summary>
internal sealed record FeatureStandardizer(double[] Mean, double[] Std)
{
    /// <summary>Below this a feature's std is treated as 1 (the feature is constant on the training rows).</summary>
    public const double MinStd = 1e-6;

    /// <summary>Mean and std (population) of the given rows of <paramref name="features"/>.</summary>
    public static FeatureStandardizer Compute(FeatureRows features, IReadOnlyList<int> rows)
    {
        var d = features.Width;
        var mean = new double[d];
        var square = new double[d];
        foreach (var row in rows)
        {
            var values = features.Row(row);
            for (var f = 0; f < d; f++)
            {
                double v = values[f];
                mean[f] += v;
                square[f] += v * v;
            }
        }
        var std = new double[d];
        for (var f = 0; f < d; f++)
        {
            mean[f] /= rows.Count;
            var variance = Math.Max(0, (square[f] / rows.Count) - (mean[f] * mean[f]));
            std[f] = Math.Sqrt(variance) < MinStd ? 1 : Math.Sqrt(variance);
        }
        return new FeatureStandardizer(mean, std);
    }

    /// <summary>
    /// W' and b' with W' x + b' = (W ((x - mean) / std) + b) / temperature for every x:
    /// W'[c, f] = W[c, f] / (std[f] T), b'[c] = (b[c] - sum_f W[c, f] mean[f] / std[f]) / T.
    /// </summary>
    public (float[] Weight, float[] Bias) Fold(double[,] weight, double[] bias, double temperature)
    {
        var classes = bias.Length;
        var d = Mean.Length;
        var folded = new float[classes * d];
        var foldedBias = new float[classes];
        for (var c = 0; c < classes; c++)
        {
            var shift = bias[c];
            for (var f = 0; f < d; f++)
            {
                var w = weight[c, f] / Std[f];
                folded[(c * d) + f] = (float)(w / temperature);
                shift -= w * Mean[f];
            }
            foldedBias[c] = (float)(shift / temperature);
        }
        return (folded, foldedBias);
    }
}
