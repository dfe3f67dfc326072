using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.OutOfDistribution;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>
/// The out-of-distribution fit's covariance, accumulated a block at a time and eigendecomposed (or, with fewer images than
/// features, the Gram matrix of the centred rows), is the decomposition a singular value decomposition of all the centred
/// rows at once gives (the way it was computed before): same eigenvalues, residual variance and distances.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class FeatureStatisticsFitTests
{
    [Fact]
    public void Fit_MatchesTheSvdOfTheCentredRows()
    {
        const int classes = 3, width = 40, perClass = 900; // 2,700 rows: more than one block of 1,024
        var (rows, labels) = Rows(classes, width, perClass, seed: 5);
        AssertMatchesTheSvd(rows, labels, classes, width, expectedComponents: FeatureStatisticsFit.MaxComponents);
    }

    /// <summary>Fewer images than features (a VGG's 4,096 from a small data set): the Gram-matrix route gives the same statistics.</summary>
    [Fact]
    public void Fit_WithFewerImagesThanFeatures_MatchesTheSvdOfTheCentredRows()
    {
        const int classes = 3, width = 300, perClass = 8;
        var (rows, labels) = Rows(classes, width, perClass, seed: 6);
        AssertMatchesTheSvd(rows, labels, classes, width, expectedComponents: ((classes * perClass) - classes) / 2);
    }

    private static (float[] Rows, int[] Labels) Rows(int classes, int width, int perClass, int seed)
    {
        var random = new Random(seed);
        var rows = new float[classes * perClass * width];
        var labels = new int[classes * perClass];
        for (var i = 0; i < labels.Length; i++)
        {
            labels[i] = i % classes;
            for (var f = 0; f < width; f++)
            {
                // Class-dependent offsets and a few strong shared directions, so the leading components are well separated.
                rows[i * width + f] = (float)((f % classes == labels[i] ? 2.0 : 0.5) + random.NextDouble() * (f < 4 ? 3.0 : 0.3));
            }
        }
        return (rows, labels);
    }

    private static void AssertMatchesTheSvd(float[] rows, int[] labels, int classes, int width, int expectedComponents)
    {
        TorchRuntime.EnsureInitialized();
        var random = new Random(7);
        var fitted = FeatureStatisticsFit.Fit(rows, labels, classes, width, seed: 1).Statistics;

        // The reference: unit-length rows, class means, SVD of every centred row.
        var unit = new double[rows.Length];
        for (var i = 0; i < labels.Length; i++)
        {
            var norm = Math.Sqrt(Enumerable.Range(0, width).Sum(f => (double)rows[i * width + f] * rows[i * width + f]));
            for (var f = 0; f < width; f++)
            {
                unit[i * width + f] = (float)(rows[i * width + f] / norm);
            }
        }
        var means = new double[classes * width];
        for (var i = 0; i < labels.Length; i++)
        {
            for (var f = 0; f < width; f++)
            {
                means[labels[i] * width + f] += unit[i * width + f] / labels.Count(l => l == labels[i]);
            }
        }
        var centred = new double[unit.Length];
        for (var i = 0; i < labels.Length; i++)
        {
            for (var f = 0; f < width; f++)
            {
                centred[i * width + f] = unit[i * width + f] - means[labels[i] * width + f];
            }
        }
        using var scope = NewDisposeScope();
        var (_, singular, _) = linalg.svd(tensor(centred, [labels.Length, width], ScalarType.Float64), fullMatrices: false);
        var eigen = (singular * singular / labels.Length).data<double>().ToArray();
        var k = fitted.Components;
        Assert.Equal(expectedComponents, k);
        for (var c = 0; c < k; c++)
        {
            Assert.Equal(Math.Max(eigen[c], fitted.ResidualVariance), fitted.Eigenvalues[c], eigen[0] * 1e-9);
        }
        var residual = (eigen.Sum() - eigen.Take(k).Sum()) / (width - k);
        Assert.Equal(Math.Max(residual, 1e-6 * eigen.Sum() / width), fitted.ResidualVariance, residual * 1e-6);

        // Distances of probes (in and out of the classes) agree with statistics built from the SVD's components.
        var (_, _, vh) = linalg.svd(tensor(centred, [labels.Length, width], ScalarType.Float64), fullMatrices: false);
        var reference = new ServerlessClassifier.ModelCore.Ood.FeatureStatistics(classes, width, [.. means.Select(m => (float)m)],
            [.. vh.narrow(0, 0, k).to_type(ScalarType.Float32).contiguous().data<float>().ToArray()], [.. fitted.Eigenvalues], fitted.ResidualVariance, fitted.Cutoff, normalize: true);
        for (var p = 0; p < 20; p++)
        {
            var probe = Enumerable.Range(0, width).Select(f => (float)(p < 10 ? rows[p * width + f] : random.NextDouble() * 4)).ToArray();
            var expected = reference.Distance(probe);
            Assert.Equal(expected, fitted.Distance(probe), expected * 1e-4);
        }
    }

    /// <summary>
    /// The randomized decomposition (taken beyond <see cref="FeatureStatisticsFit.ExactLimit"/> images and features; lowered
    /// here so that small data reach it) gives the exact routes' statistics within a stated tolerance, with fewer images than
    /// features (the exact route then is the Gram matrix) and with more (the covariance): every kept eigenvalue and the
    /// residual within 0.1 %, the cut-off and the score quantiles within 0.1 %, and distances of training and foreign
    /// features within 0.1 %.
    /// </summary>
    [Theory]
    [InlineData(360, 700)]
    [InlineData(1500, 220)]
    public void Fit_Randomized_MatchesTheExactFit(int images, int width)
    {
        TorchRuntime.EnsureInitialized();
        const int classes = 4;
        var (features, labels) = PooledLikeRows(classes, width, images, seed: 11);
        var rows = new FeatureRows(width, features);
        var exact = FeatureStatisticsFit.Fit(rows, labels, classes, seed: 3, exactLimit: int.MaxValue);
        var randomized = FeatureStatisticsFit.Fit(rows, labels, classes, seed: 3, exactLimit: 100);

        Assert.Equal(FeatureStatisticsFit.MaxComponents, randomized.Statistics.Components);
        Assert.Equal(exact.Statistics.Components, randomized.Statistics.Components);
        for (var j = 0; j < exact.Statistics.Components; j++)
        {
            Assert.Equal(exact.Statistics.Eigenvalues[j], randomized.Statistics.Eigenvalues[j], exact.Statistics.Eigenvalues[j] * 1e-3);
        }
        Assert.Equal(exact.Statistics.ResidualVariance, randomized.Statistics.ResidualVariance, exact.Statistics.ResidualVariance * 1e-3);
        Assert.Equal(exact.Spec.Cutoff, randomized.Spec.Cutoff, exact.Spec.Cutoff * 1e-3);
        for (var q = 0; q < exact.Spec.ScoreQuantiles.Count; q++)
        {
            Assert.Equal(exact.Spec.ScoreQuantiles[q], randomized.Spec.ScoreQuantiles[q], 1e-3 * exact.Spec.ScoreQuantiles[q] + 1e-4);
        }
        var random = new Random(13);
        for (var p = 0; p < 40; p++)
        {
            var probe = p < 20 ? features.AsSpan(p * 7 * width, width).ToArray() : [.. Enumerable.Range(0, width).Select(_ => (float)random.NextDouble())];
            var expected = exact.Statistics.Distance(probe);
            Assert.Equal(expected, randomized.Statistics.Distance(probe), expected * 1e-3);
        }
    }

    /// <summary>
    /// Rows shaped like pooled CNN features: non-negative, a class offset, and many shared directions whose variance falls
    /// off as a power of their rank (no clean gap after the kept components, the hard case for a randomized method).
    /// </summary>
    private static (float[] Rows, int[] Labels) PooledLikeRows(int classes, int width, int images, int seed)
    {
        var random = new Random(seed);
        const int directions = 150;
        var basis = new double[directions * width];
        for (var i = 0; i < basis.Length; i++)
        {
            basis[i] = random.NextDouble() - 0.5;
        }
        var offsets = new double[classes * width];
        for (var i = 0; i < offsets.Length; i++)
        {
            offsets[i] = random.NextDouble();
        }
        var rows = new float[images * width];
        var labels = new int[images];
        var latent = new double[directions];
        for (var i = 0; i < images; i++)
        {
            labels[i] = i % classes;
            for (var j = 0; j < directions; j++)
            {
                latent[j] = (random.NextDouble() - 0.5) * Math.Pow(j + 1, -0.8);
            }
            for (var f = 0; f < width; f++)
            {
                var v = offsets[labels[i] * width + f] + 0.05 * random.NextDouble();
                for (var j = 0; j < directions; j++)
                {
                    v += latent[j] * basis[j * width + f];
                }
                rows[i * width + f] = (float)Math.Max(v, 0);
            }
        }
        return (rows, labels);
    }

    [Fact]
    public void Fit_OnTheSplitsArrays_EqualsTheFitOnOneArray_AndLeavesTheFeaturesAsTheyWere()
    {
        TorchRuntime.EnsureInitialized();
        const int classes = 3, width = 12, images = 150;
        var random = new Random(9);
        var features = Enumerable.Range(0, images * width).Select(i => (float)(((i / width) % classes == i % classes ? 2 : 0) + random.NextDouble())).ToArray();
        var labels = Enumerable.Range(0, images).Select(i => i % classes).ToArray();
        var original = features.ToArray();

        var one = FeatureStatisticsFit.Fit(features, labels, classes, width, seed: 2);
        var split = FeatureStatisticsFit.Fit(new FeatureRows(width, features[..(101 * width)], features[(101 * width)..]), labels, classes, seed: 2);

        Assert.Equal(original, features); // scaled to unit length as read, not in place
        Assert.Equal(one.Spec.Cutoff, split.Spec.Cutoff);
        Assert.Equal(one.Spec.ScoreQuantiles, split.Spec.ScoreQuantiles);
        Assert.Equal(one.Statistics.Eigenvalues, split.Statistics.Eigenvalues);
        Assert.Equal(5, one.Spec.Folds);
        var probe = features.AsSpan(7 * width, width);
        Assert.Equal(one.Statistics.Distance(probe), split.Statistics.Distance(probe));
    }
}
