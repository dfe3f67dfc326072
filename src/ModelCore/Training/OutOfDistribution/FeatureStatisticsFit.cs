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
/// features scaled to unit length, class means, then the shared within-class covariance's leading eigenvectors (at most
/// <see cref="MaxComponents"/>, and at most half the degrees of freedom, images minus classes) and the average variance of
/// the rest. The decomposition is exact up to <see cref="ExactLimit"/> images or features (the covariance accumulated a
/// block of rows at a time, or the Gram matrix with fewer images than features) and randomized beyond (subspace iteration,
/// linear in the images and the width). The cut-off is calibrated out-of-fold: with 5 stratified folds, each image is
/// scored by statistics fitted on the other folds, and the cut-off is the distance that
/// <see cref="OutOfDistributionSpec.ExceedShare"/> of those scores exceed (scoring the images with statistics that include
/// them would make the cut-off too tight for new images). The served statistics are the fit on every image.
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

    /// <summary>
    /// While the images or the width are at most this many, the decomposition is exact (the covariance, or the Gram matrix
    /// with fewer images than features: at most a 1,024 x 1,024 eigendecomposition, well under a second); beyond, on both
    /// counts (thousands of images of a VGG's 4,096 features), it is randomized (<see cref="DecomposeRandomized"/>).
    /// The default backbone's 512 or 768 features always take an exact route.
    /// </summary>
    public const int ExactLimit = 1024;

    /// <summary>Extra directions the randomized basis carries beyond the components kept (its accuracy on the last kept ones).</summary>
    private const int Oversampling = 32;

    /// <summary>The randomized iteration stops when no kept Ritz value moved by more than this share of itself in a pass ...</summary>
    private const double RitzTolerance = 1e-5;

    /// <summary>... or after this many passes.</summary>
    private const int MaxPasses = 40;

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
    /// <param name="exactLimit">The decomposition is exact while the images or the width are at most this many (see <see cref="ExactLimit"/>); tests lower it to reach the randomized route on small data.</param>
    internal static FittedFeatureStatistics Fit(FeatureRows features, IReadOnlyList<int> labels, int classes, int seed, int exactLimit = ExactLimit)
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
        // Every image first: its subspace is where each fold's randomized iteration starts (the folds share four fifths of
        // the images, so theirs is close), and the served statistics are these with the calibrated cut-off.
        var all = Compute(rows, labels, [.. Enumerable.Range(0, n)], classes, width, exactLimit, seed, start: null);
        if (all.Classes != classes)
        {
            throw new ArgumentException($"Every one of the {classes} classes needs at least one image.", nameof(labels));
        }
        if (folds > 0)
        {
            var assignment = StratifiedFolds.Assign(labels, folds, seed);
            for (var fold = 0; fold < folds; fold++)
            {
                var held = Enumerable.Range(0, n).Where(i => assignment[i] == fold).ToArray();
                var statistics = Compute(rows, labels, [.. Enumerable.Range(0, n).Where(i => assignment[i] != fold)], classes, width, exactLimit, seed + fold + 1, all.Basis)
                    .Statistics(cutoff: 1);
                foreach (var i in held)
                {
                    distances[i] = statistics.Distance(rows.Read(i, scratch));
                }
            }
        }
        else
        {
            var statistics = all.Statistics(cutoff: 1);
            for (var i = 0; i < n; i++)
            {
                distances[i] = statistics.Distance(rows.Read(i, scratch));
            }
        }
        var cutoff = Math.Max(Quantile(distances, 1 - OutOfDistributionSpec.DefaultExceedShare), 1e-9);
        var final = all.Statistics(cutoff);
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

    private static Decomposed Compute(UnitRows rows, IReadOnlyList<int> labels, int[] indices, int classes, int width, int exactLimit, int seed, double[]? start)
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
        var centred = new CentredRows(rows, labels, indices, slot, means, width);
        var k = Math.Min(Math.Min(MaxComponents, width - 1), Math.Max(0, (indices.Length - present.Length) / 2));
        double[] variances;
        float[] components;
        double total;
        double[]? basis = null;
        using (var scope = NewDisposeScope())
        {
            if (Math.Min(indices.Length, width) > exactLimit && k > 0)
            {
                (variances, components, total, basis) = DecomposeRandomized(centred, k, seed, start);
            }
            else if (indices.Length < width)
            {
                (variances, components, total) = DecomposeFewRows(centred, k);
            }
            else
            {
                // The within-class covariance (width x width), accumulated a block of rows at a time: its eigenvectors are the
                // right singular vectors of the centred rows and its eigenvalues their squared singular values over n, so this
                // is the decomposition of the centred matrix without ever holding it.
                var covariance = zeros([width, width], ScalarType.Float64);
                centred.ForEachBlock(block =>
                {
                    using var inner = NewDisposeScope();
                    covariance.add_(block.t().matmul(block));
                });
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
        return new Decomposed(present.Length, width, [.. means.Select(m => (float)m)], components, eigenvalues, residual, basis);
    }

    /// <summary>One fit's pieces: the statistics at any cut-off, and (from the randomized route) the subspace it converged to.</summary>
    private sealed record Decomposed(int Classes, int Width, float[] Means, float[] Components, double[] Eigenvalues, double Residual, double[]? Basis)
    {
        public FeatureStatistics Statistics(double cutoff) => new(Classes, Width, Means, Components, Eigenvalues, Residual, cutoff, normalize: true);
    }

    /// <summary>
    /// The leading <paramref name="k"/> eigenpairs of the within-class covariance C = A'A / n (A the n x width centred rows)
    /// by subspace iteration with Rayleigh-Ritz (randomized range finding, Halko, Martinsson and Tropp 2011, algorithm 4.4
    /// with the Ritz step of 5.3): a width x l basis Q (l = k + <see cref="Oversampling"/>) is multiplied by C a block of rows
    /// at a time (A'(A Q), never C itself) and orthonormalised, until the Ritz values (the eigenvalues of Q'CQ) stop moving.
    /// Each pass costs 4 n width l multiply-adds: linear in the images and in the width, where the exact routes cost n width^2
    /// + width^3 (covariance) or n^2 width + n^3 (Gram). The total variance (the trace, which sets the residual) is exact.
    /// <paramref name="start"/>, when given, is the basis another fit converged to (the fit on every image, for a fold).
    /// </summary>
    private static (double[] Variances, float[] Components, double Total, double[] Basis) DecomposeRandomized(CentredRows centred, int k, int seed, double[]? start)
    {
        var width = centred.Width;
        var l = Math.Min(width, k + Oversampling);
        var q = start is { } basis && basis.Length == width * l ? tensor(basis, [width, l], ScalarType.Float64) : Gaussian(width, l, seed);
        q = linalg.qr(q).Q;
        double[]? previous = null;
        for (var pass = 1; ; pass++)
        {
            var (product, total) = centred.CovarianceTimes(q);
            var projected = q.t().matmul(product);
            projected = projected.add(projected.t()).div_(2);
            var (eigen, vectors) = linalg.eigh(projected); // ascending
            var ritz = eigen.flip(0).clamp_min(0).data<double>().ToArray();
            var converged = previous is not null && Enumerable.Range(0, k).All(j => Math.Abs(ritz[j] - previous[j]) <= RitzTolerance * ritz[j]);
            if (converged || pass == MaxPasses)
            {
                var directions = q.matmul(vectors.flip(1).narrow(1, 0, k)); // width x k
                return ([.. ritz.Take(k)], [.. directions.t().to_type(ScalarType.Float32).contiguous().data<float>().ToArray()], total,
                    [.. linalg.qr(product).Q.contiguous().data<double>().ToArray()]);
            }
            previous = ritz;
            q = linalg.qr(product).Q;
        }
    }

    private static Tensor Gaussian(int rows, int columns, int seed)
    {
        var random = new Random(seed);
        var values = new double[rows * columns];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
        }
        return tensor(values, [rows, columns], ScalarType.Float64);
    }

    /// <summary>
    /// The decomposition when there are fewer rows than features (a few images of a VGG's 4,096 features): the eigenvalues
    /// of the n x n Gram matrix of the centred rows over n are the covariance's non-zero ones, and each eigenvector u of it
    /// gives the covariance's as the centred rows' transpose times u, scaled to unit length. The same statistics as the
    /// width x width covariance gives (whose eigendecomposition took a minute at 4,096 features), from n x width doubles,
    /// fewer than the covariance's. Components whose variance is negligible (below 1e-10 of the largest, far under the
    /// residual floor) are left to the residual, which scores them the same.
    /// </summary>
    private static (double[] Variances, float[] Components, double Total) DecomposeFewRows(CentredRows rows, int k)
    {
        var n = rows.Count;
        var width = rows.Width;
        var centredRows = new double[n * width];
        for (var r = 0; r < n; r++)
        {
            rows.Write(r, centredRows.AsSpan(r * width, width));
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

    /// <summary>The chosen rows at unit length minus their class mean, read a block at a time (never all at once).</summary>
    private sealed class CentredRows(UnitRows rows, IReadOnlyList<int> labels, int[] indices, int[] slot, double[] means, int width)
    {
        private readonly float[] row = new float[width];

        public int Count => indices.Length;

        public int Width => width;

        /// <summary>Writes the <paramref name="r"/>-th chosen row, centred, into <paramref name="destination"/>.</summary>
        public void Write(int r, Span<double> destination)
        {
            var s = slot[labels[indices[r]]];
            rows.Read(indices[r], row);
            for (var f = 0; f < width; f++)
            {
                destination[f] = row[f] - means[s * width + f];
            }
        }

        /// <summary>Calls <paramref name="action"/> with each block of at most <see cref="CovarianceBlockRows"/> centred rows (a float64 tensor, rows x width).</summary>
        public void ForEachBlock(Action<Tensor> action)
        {
            var block = new double[Math.Min(CovarianceBlockRows, Count) * width];
            for (var start = 0; start < Count; start += CovarianceBlockRows)
            {
                var count = Math.Min(CovarianceBlockRows, Count - start);
                for (var r = 0; r < count; r++)
                {
                    Write(start + r, block.AsSpan(r * width, width));
                }
                using var scope = NewDisposeScope();
                action(tensor(block.AsSpan(0, count * width).ToArray(), [count, width], ScalarType.Float64));
            }
        }

        /// <summary>
        /// C Q for the covariance C = A'A / n of these rows (A'(A Q), a block at a time, in float32: the iteration's accuracy
        /// is bounded by its tolerance, far above float32's), and C's trace (summed in float64).
        /// </summary>
        public (Tensor Product, double Trace) CovarianceTimes(Tensor q)
        {
            var basis = q.to_type(ScalarType.Float32);
            var product = zeros([width, q.shape[1]], ScalarType.Float32);
            var centred = new double[width];
            var block = new float[Math.Min(CovarianceBlockRows, Count) * width];
            double trace = 0;
            for (var start = 0; start < Count; start += CovarianceBlockRows)
            {
                var count = Math.Min(CovarianceBlockRows, Count - start);
                for (var r = 0; r < count; r++)
                {
                    Write(start + r, centred);
                    var destination = block.AsSpan(r * width, width);
                    for (var f = 0; f < width; f++)
                    {
                        destination[f] = (float)centred[f];
                        trace += centred[f] * centred[f];
                    }
                }
                using var scope = NewDisposeScope();
                var rowsBlock = tensor(count * width == block.Length ? block : block.AsSpan(0, count * width).ToArray(), [count, width], ScalarType.Float32);
                product.add_(rowsBlock.t().matmul(rowsBlock.matmul(basis)));
            }
            return (product.to_type(ScalarType.Float64).div_(Count), trace / Count);
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
