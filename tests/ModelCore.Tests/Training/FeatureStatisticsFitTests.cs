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
