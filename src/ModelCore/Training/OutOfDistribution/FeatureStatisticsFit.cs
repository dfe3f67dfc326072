using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Ood;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Probe;

namespace ServerlessClassifier.ModelCore.OutOfDistribution;

/// <summary>The statistics to serve and the manifest section that describes them.</summary>
public sealed record FittedFeatureStatistics(FeatureStatistics Statistics, OutOfDistributionSpec Spec);

/// <summary>
/// Fits the out-of-distribution statistics (<see cref="FeatureStatistics"/>) to the training images' features:
/// features scaled to unit length, class means, then an eigendecomposition of the covariance of the features centred on their
/// class means (accumulated a block at a time, so memory does not grow with the images) gives the shared within-class covariance's leading eigenvectors (at most <see cref="MaxComponents"/>, and at most half
/// the degrees of freedom, images minus classes) and the average variance of the rest. The cut-off is calibrated
/// out-of-fold: with 5 stratified folds, each image is scored by statistics fitted on the other folds, and the
/// cut-off is the distance that <see cref="OutOfDistributionSpec.ExceedShare"/> of those scores exceed (scoring the
/// images with statistics that include them would make the cut-off too tight for new images). The served
/// statistics are then fitted on every image.
/// </summary>
public static class FeatureStatisticsFit
{
    public const int MaxComponents = 32;

    public const int Folds = 5;

    /// <summary>Fewer images than this are scored in-sample (no folds): the cut-off is then optimistic, and the manifest says so (folds 0).</summary>
    public const int MinImagesForFolds = 20;

    public const string FileName = "ood.bin";

    /// <summary>Rows centred and added to the covariance at a time.</summary>
    private const int CovarianceBlockRows = 1024;

    /// <param name="features">Images x width features, row-major.</param>
    public static FittedFeatureStatistics Fit(float[] features, IReadOnlyList<int> labels, int classes, int width, int seed)
    {
        ArgumentNullException.ThrowIfNull(features);
        ArgumentNullException.ThrowIfNull(labels);
        if (labels.Count == 0 || features.Length != labels.Count * width)
        {
            throw new ArgumentException($"{features.Length} feature values for {labels.Count} images of {width} features.", nameof(features));
        }
        return Fit(new FeatureRows(width, features), labels, classes, seed);
    }

    /// <summary>The fit on rows that stay where they are (the training and the validation split's arrays): no copy of the features is made.</summary>
    internal static FittedFeatureStatistics Fit(FeatureRows features, IReadOnlyList<int> labels, int classes, int seed)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var n = labels.Count;
        var width = features.Width;
        if (n == 0 || features.Count != n)
        {
            throw new ArgumentException($"{features.Count} rows of features for {n} images.", nameof(features));
        }
        var rows = new UnitRows(features);
        var scratch = new float[width];
        var distances = new double[n];
        var everyClassTwice = Enumerable.Range(0, classes).All(c => labels.Count(l => l == c) >= 2);
        var folds = n >= MinImagesForFolds && everyClassTwice ? Folds : 0;
        if (folds > 0)
        {
            var assignment = StratifiedFolds.Assign(labels, folds, seed);
            for (var fold = 0; fold < folds; fold++)
            {
                var held = Enumerable.Range(0, n).Where(i => assignment[i] == fold).ToArray();
                var statistics = Compute(rows, labels, [.. Enumerable.Range(0, n).Where(i => assignment[i] != fold)], classes, width, cutoff: 1);
                foreach (var i in held)
                {
                    distances[i] = statistics.Distance(rows.Read(i, scratch));
                }
            }
        }
        var all = Compute(rows, labels, [.. Enumerable.Range(0, n)], classes, width, cutoff: 1);
        if (folds == 0)
        {
            for (var i = 0; i < n; i++)
            {
                distances[i] = all.Distance(rows.Read(i, scratch));
            }
        }
        var cutoff = Math.Max(Quantile(distances, 1 - OutOfDistributionSpec.DefaultExceedShare), 1e-9);
        var final = Compute(rows, labels, [.. Enumerable.Range(0, n)], classes, width, cutoff);
        if (final.Classes != classes)
        {
            throw new ArgumentException($"Every one of the {classes} classes needs at least one image.", nameof(labels));
        }
        var spec = new OutOfDistributionSpec
        {
            File = FileName,
            Normalization = OutOfDistributionSpec.UnitLength,
            Features = width,
            Components = final.Components,
            ResidualVariance = final.ResidualVariance,
            Cutoff = cutoff,
            Images = n,
            Folds = folds,
            ScoreQuantiles = [.. Enumerable.Range(0, 21).Select(q => Math.Round(Quantile(distances, q / 20.0) / cutoff, 4))],
        };
        return new FittedFeatureStatistics(final, spec);
    }

    /// <summary>The value below which a share <paramref name="q"/> of <paramref name="values"/> lie (linear interpolation).</summary>
    public static double Quantile(IReadOnlyList<double> values, double q)
    {
        ArgumentNullException.ThrowIfNull(values);
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }
        var position = Math.Clamp(q, 0, 1) * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + (position - low) * (sorted[high] - sorted[low]);
    }

    private static FeatureStatistics Compute(UnitRows rows, IReadOnlyList<int> labels, int[] indices, int classes, int width, double cutoff)
    {
        var row = new float[width];
        // Class means over the chosen images; a class absent from them (a fold without it) gets no mean.
        var present = Enumerable.Range(0, classes).Where(c => indices.Any(i => labels[i] == c)).ToArray();
        var means = new double[present.Length * width];
        var slot = new int[classes];
        Array.Fill(slot, -1);
        for (var p = 0; p < present.Length; p++)
        {
            slot[present[p]] = p;
        }
        var counts = new int[present.Length];
        foreach (var i in indices)
        {
            var s = slot[labels[i]];
            counts[s]++;
            rows.Read(i, row);
            for (var f = 0; f < width; f++)
            {
                means[s * width + f] += row[f];
            }
        }
        for (var s = 0; s < present.Length; s++)
        {
            for (var f = 0; f < width; f++)
            {
                means[s * width + f] /= counts[s];
            }
        }
        // The within-class covariance (width x width), accumulated a block of rows at a time: its eigenvectors are the
        // right singular vectors of the centred rows and its eigenvalues their squared singular values over n, so this
        // is the decomposition of the centred matrix without ever holding it (n x width doubles, several times over
        // in the SVD's factors and workspace: the one part of training that grew with the data set).
        var k = Math.Min(Math.Min(MaxComponents, width - 1), Math.Max(0, (indices.Length - present.Length) / 2));
        double[] variances;
        float[] components;
        double total;
        using (var scope = NewDisposeScope())
        {
            if (indices.Length < width)
            {
                (variances, components, total) = DecomposeFewRows(rows, labels, indices, slot, means, width, k);
            }
            else
            {
                var covariance = zeros([width, width], ScalarType.Float64);
                var block = new double[Math.Min(CovarianceBlockRows, indices.Length) * width];
                for (var start = 0; start < indices.Length; start += CovarianceBlockRows)
                {
                    var count = Math.Min(CovarianceBlockRows, indices.Length - start);
                    for (var r = 0; r < count; r++)
                    {
                        CentredRow(rows, labels, indices[start + r], slot, means, block.AsSpan(r * width, width), row);
                    }
                    using var inner = NewDisposeScope();
                    var centred = tensor(block.AsSpan(0, count * width).ToArray(), [count, width], ScalarType.Float64);
                    covariance.add_(centred.t().matmul(centred));
                }
                covariance.div_(indices.Length);
                var (eigen, vectors) = linalg.eigh(covariance); // ascending
                var descending = eigen.flip(0).clamp_min(0).data<double>().ToArray();
                total = descending.Sum();
                variances = [.. descending.Take(k)];
                components = k == 0 ? [] : [.. vectors.flip(1).narrow(1, 0, k).t().to_type(ScalarType.Float32).contiguous().data<float>().ToArray()];
            }
        }
        // Directions beyond the decomposition's rank have no variance in the sample; they share the residual average.
        var residual = Math.Max((total - variances.Sum()) / (width - k), Math.Max(1e-6 * total / width, 1e-12));
        var eigenvalues = variances.Select(v => Math.Max(v, residual)).ToArray();
        return new FeatureStatistics(present.Length, width, [.. means.Select(m => (float)m)], components, eigenvalues, residual, cutoff, normalize: true);
    }

    /// <summary>
    /// The decomposition when there are fewer rows than features (a few images of a VGG's 4,096 features): the eigenvalues
    /// of the n x n Gram matrix of the centred rows over n are the covariance's non-zero ones, and each eigenvector u of it
    /// gives the covariance's as the centred rows' transpose times u, scaled to unit length. The same statistics as the
    /// width x width covariance gives (whose eigendecomposition took a minute at 4,096 features), from n x width doubles,
    /// fewer than the covariance's. Components whose variance is negligible (below 1e-10 of the largest, far under the
    /// residual floor) are left to the residual, which scores them the same.
    /// </summary>
    private static (double[] Variances, float[] Components, double Total) DecomposeFewRows(UnitRows rows, IReadOnlyList<int> labels, int[] indices, int[] slot, double[] means, int width, int k)
    {
        var n = indices.Length;
        var centredRows = new double[n * width];
        var row = new float[width];
        for (var r = 0; r < n; r++)
        {
            CentredRow(rows, labels, indices[r], slot, means, centredRows.AsSpan(r * width, width), row);
        }
        using var scope = NewDisposeScope();
        var centred = tensor(centredRows, [n, width], ScalarType.Float64);
        var gram = centred.matmul(centred.t()).div_(n);
        var (eigen, vectors) = linalg.eigh(gram); // ascending
        var descending = eigen.flip(0).clamp_min(0).data<double>().ToArray();
        var total = descending.Sum();
        var kept = descending.Take(k).TakeWhile(v => v > 1e-10 * descending[0]).Count();
        if (kept == 0)
        {
            return ([], [], total);
        }
        var directions = centred.t().matmul(vectors.flip(1).narrow(1, 0, kept)); // width x kept
        directions = directions.div(directions.norm(0, keepdim: true));
        return ([.. descending.Take(kept)], [.. directions.t().to_type(ScalarType.Float32).contiguous().data<float>().ToArray()], total);
    }

    /// <summary>Writes row <paramref name="index"/> at unit length minus its class mean into <paramref name="destination"/>.</summary>
    private static void CentredRow(UnitRows rows, IReadOnlyList<int> labels, int index, int[] slot, double[] means, Span<double> destination, float[] row)
    {
        var s = slot[labels[index]];
        rows.Read(index, row);
        for (var f = 0; f < destination.Length; f++)
        {
            destination[f] = row[f] - means[s * destination.Length + f];
        }
    }

    /// <summary>
    /// The rows scaled to unit length as they are read (the distance then measures direction, not the activation's overall
    /// strength, which makes Mahalanobis scores of pooled CNN features markedly better at telling unseen content apart).
    /// Only each row's length is kept, not a scaled copy of the features.
    /// </summary>
    private sealed class UnitRows
    {
        private readonly FeatureRows features;
        private readonly double[] lengths;

        public UnitRows(FeatureRows features)
        {
            this.features = features;
            lengths = new double[features.Count];
            for (var i = 0; i < lengths.Length; i++)
            {
                double sum = 0;
                foreach (var v in features.Row(i))
                {
                    sum += (double)v * v;
                }
                lengths[i] = Math.Sqrt(sum);
            }
        }

        /// <summary>Row <paramref name="index"/> at unit length (unchanged when all zero), written into and returned as <paramref name="destination"/>.</summary>
        public ReadOnlySpan<float> Read(int index, Span<float> destination)
        {
            var row = features.Row(index);
            var length = lengths[index];
            for (var f = 0; f < row.Length; f++)
            {
                destination[f] = length > 0 ? (float)(row[f] / length) : row[f];
            }
            return destination[..row.Length];
        }
    }
}
