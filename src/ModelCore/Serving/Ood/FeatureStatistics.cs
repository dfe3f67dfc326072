using System.Buffers.Binary;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Ood;

/// <summary>
/// The training features' statistics behind the out-of-distribution score: one mean per class and a low-rank
/// model of the covariance they share (the leading eigenvectors of the within-class covariance with their
/// eigenvalues; every other direction has the residual variance). The squared Mahalanobis distance of
/// features x to class c, with d = x - mean_c and p = V d (the kept components), is
/// sum_j p_j^2 / lambda_j + (|d|^2 - |p|^2) / residual; the score is the distance to the nearest class over the
/// calibrated cut-off. Stored as little-endian float32: the class means (classes x features), the components
/// (components x features), the eigenvalues (components). Thread-safe (immutable).
/// </summary>
public sealed class FeatureStatistics
{
    private readonly float[] means;
    private readonly float[] components;
    private readonly double[] eigenvalues;
    private readonly double[] projectedMeans;
    private readonly double[] meanNorms;

    public FeatureStatistics(int classes, int features, float[] means, float[] components, double[] eigenvalues, double residualVariance, double cutoff, bool normalize = false)
    {
        ArgumentNullException.ThrowIfNull(means);
        ArgumentNullException.ThrowIfNull(components);
        ArgumentNullException.ThrowIfNull(eigenvalues);
        if (classes < 1 || features < 1 || means.Length != classes * features || components.Length != eigenvalues.Length * features)
        {
            throw new ArgumentException($"Statistics of {classes} classes x {features} features need {classes * features} mean values and components x {features} values; got {means.Length} and {components.Length}.");
        }
        if (!(residualVariance > 0) || !(cutoff > 0) || eigenvalues.Any(l => !(l > 0)) || means.Any(v => !float.IsFinite(v)) || components.Any(v => !float.IsFinite(v)))
        {
            throw new ArgumentException("The variances and the cut-off must be positive and every value finite.");
        }
        Classes = classes;
        Features = features;
        this.means = means;
        this.components = components;
        this.eigenvalues = eigenvalues;
        ResidualVariance = residualVariance;
        Cutoff = cutoff;
        Normalize = normalize;
        // Precomputed so that a score costs (components + classes) x features multiply-adds.
        projectedMeans = new double[classes * eigenvalues.Length];
        meanNorms = new double[classes];
        for (var c = 0; c < classes; c++)
        {
            var mean = means.AsSpan(c * features, features);
            meanNorms[c] = Dot(mean, mean);
            for (var j = 0; j < eigenvalues.Length; j++)
            {
                projectedMeans[c * eigenvalues.Length + j] = Dot(components.AsSpan(j * features, features), mean);
            }
        }
    }

    public int Classes { get; }

    public int Features { get; }

    public int Components => eigenvalues.Length;

    public double ResidualVariance { get; }

    public double Cutoff { get; }

    /// <summary>True when features are scaled to unit length before the distance (the statistics were fitted to such features).</summary>
    public bool Normalize { get; }

    /// <summary>The features as the statistics see them: scaled to unit length when <see cref="Normalize"/>.</summary>
    public float[] Prepare(ReadOnlySpan<float> x)
    {
        var copy = x.ToArray();
        if (Normalize)
        {
            var length = Math.Sqrt(Dot(copy, copy));
            if (length > 0)
            {
                for (var i = 0; i < copy.Length; i++)
                {
                    copy[i] = (float)(copy[i] / length);
                }
            }
        }
        return copy;
    }

    public ReadOnlySpan<float> Means => means;

    public ReadOnlySpan<float> ComponentVectors => components;

    public IReadOnlyList<double> Eigenvalues => eigenvalues;

    /// <summary>The Mahalanobis distance of <paramref name="features"/> (as the engine gives them) to the nearest class mean.</summary>
    public double Distance(ReadOnlySpan<float> features)
    {
        if (features.Length != Features)
        {
            throw new ArgumentException($"{features.Length} features; the statistics have {Features}.", nameof(features));
        }
        ReadOnlySpan<float> x = Prepare(features);
        var k = eigenvalues.Length;
        Span<double> projected = k <= 256 ? stackalloc double[k] : new double[k];
        for (var j = 0; j < k; j++)
        {
            projected[j] = Dot(components.AsSpan(j * Features, Features), x);
        }
        var norm = Dot(x, x);
        var best = double.PositiveInfinity;
        for (var c = 0; c < Classes; c++)
        {
            var distanceSquared = norm - 2 * Dot(means.AsSpan(c * Features, Features), x) + meanNorms[c];
            double explained = 0, inComponents = 0;
            for (var j = 0; j < k; j++)
            {
                var p = projected[j] - projectedMeans[c * k + j];
                explained += p * p;
                inComponents += p * p / eigenvalues[j];
            }
            var squared = inComponents + Math.Max(distanceSquared - explained, 0) / ResidualVariance;
            best = Math.Min(best, squared);
        }
        return Math.Sqrt(Math.Max(best, 0));
    }

    /// <summary>The score: <see cref="Distance"/> over <see cref="Cutoff"/> (above 1: out of distribution).</summary>
    public double Score(ReadOnlySpan<float> x) => Distance(x) / Cutoff;

    /// <summary>The file's bytes (see the type's summary for the layout).</summary>
    public byte[] ToBytes()
    {
        var values = means.Length + components.Length + eigenvalues.Length;
        var bytes = new byte[values * sizeof(float)];
        var offset = 0;
        foreach (var v in means)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), v);
            offset += sizeof(float);
        }
        foreach (var v in components)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), v);
            offset += sizeof(float);
        }
        foreach (var v in eigenvalues)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(offset), (float)v);
            offset += sizeof(float);
        }
        return bytes;
    }

    /// <summary>Reads the file a manifest's <paramref name="spec"/> describes, for a model of <paramref name="classes"/> classes.</summary>
    public static FeatureStatistics Read(ReadOnlySpan<byte> bytes, OutOfDistributionSpec spec, int classes, string source)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var d = spec.Features;
        var k = spec.Components;
        long expected = ((long)classes * d + (long)k * d + k) * sizeof(float);
        if (bytes.Length != expected)
        {
            throw new ModelFormatException($"{source}: {spec.File} has {bytes.Length} bytes; {classes} class means and {k} components of {d} features need {expected}.");
        }
        var means = new float[classes * d];
        var components = new float[k * d];
        var eigenvalues = new double[k];
        var offset = 0;
        for (var i = 0; i < means.Length; i++, offset += sizeof(float))
        {
            means[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[offset..]);
        }
        for (var i = 0; i < components.Length; i++, offset += sizeof(float))
        {
            components[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[offset..]);
        }
        for (var i = 0; i < k; i++, offset += sizeof(float))
        {
            eigenvalues[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[offset..]);
        }
        try
        {
            return new FeatureStatistics(classes, d, means, components, eigenvalues, spec.ResidualVariance, spec.Cutoff, spec.Normalization == OutOfDistributionSpec.UnitLength);
        }
        catch (ArgumentException e)
        {
            throw new ModelFormatException($"{source}: {spec.File}: {e.Message}", e);
        }
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (var i = 0; i < a.Length; i++)
        {
            sum += (double)a[i] * b[i];
        }
        return sum;
    }
}
