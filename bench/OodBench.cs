using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.OutOfDistribution;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Runtime;

namespace ServerlessClassifier.Bench;

/// <summary>
/// The out-of-distribution and calibration steps on a wide backbone's features (4,096, a VGG's), timed on synthetic
/// features shaped like pooled CNN features (no 2,000-image VGG run fits this machine's time): the product's fit against
/// the exact decomposition (the covariance or the Gram matrix, the route every size took before) on the same rows in the
/// same run, with how far the randomized fit's scores are from the exact ones. Printed, docs untouched. Usage:
/// <c>ServerlessClassifier.Bench.dll --ood-wide [images,...] [width]</c>.
/// </summary>
internal static class OodBench
{
    public const string Flag = "--ood-wide";

    public static int Run(IReadOnlyList<int> imageCounts, int width)
    {
        TorchRuntime.EnsureInitialized();
        TorchSharp.torch.set_num_threads(Environment.ProcessorCount);
        Console.WriteLine($"OOD fit on synthetic {width}-wide features; CPU flags {BenchEnvironment.CpuFlags()}; {BenchEnvironment.Describe()}; load average {File.ReadAllText("/proc/loadavg").Trim()}");
        const int classes = 10;
        foreach (var images in imageCounts)
        {
            var (features, labels) = PooledLikeRows(classes, width, images, seed: 1);
            var rows = new FeatureRows(width, features);
            var clock = Stopwatch.StartNew();
            var product = FeatureStatisticsFit.Fit(rows, labels, classes, seed: 1);
            var productSeconds = clock.Elapsed.TotalSeconds;
            clock.Restart();
            var exact = FeatureStatisticsFit.Fit(rows, labels, classes, seed: 1, exactLimit: int.MaxValue);
            var exactSeconds = clock.Elapsed.TotalSeconds;
            var worst = 0.0;
            for (var i = 0; i < images; i += Math.Max(1, images / 200))
            {
                var row = features.AsSpan(i * width, width);
                var reference = exact.Statistics.Score(row);
                worst = Math.Max(worst, Math.Abs(product.Statistics.Score(row) - reference) / reference);
            }

            // Calibration: the temperature fitted and cross-fitted on held-out logits of these images.
            var random = new Random(2);
            var logits = new double[images * classes];
            for (var i = 0; i < logits.Length; i++)
            {
                logits[i] = random.NextDouble() * 4 + (i % classes == labels[i / classes] ? 3 : 0);
            }
            clock.Restart();
            var choice = Calibration.ChooseTemperature(logits, labels, classes, seed: 1);
            var calibrationSeconds = clock.Elapsed.TotalSeconds;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"OOD images={images} width={width} product={productSeconds:F2}s exact={exactSeconds:F2}s speedup={exactSeconds / productSeconds:F1}x components={product.Spec.Components} cutoff={product.Spec.Cutoff:F4} exactCutoff={exact.Spec.Cutoff:F4} worstScoreDifference={worst:P3} calibration={calibrationSeconds:F2}s (T {choice.Temperature:F3})"));
        }
        return 0;
    }

    /// <summary>Non-negative rows: a class offset and 150 shared directions whose spread falls off as a power of their rank.</summary>
    private static (float[] Rows, int[] Labels) PooledLikeRows(int classes, int width, int images, int seed)
    {
        var random = new Random(seed);
        const int directions = 150;
        var basis = new float[directions * width];
        for (var i = 0; i < basis.Length; i++)
        {
            basis[i] = (float)(random.NextDouble() - 0.5);
        }
        var rows = new float[images * width];
        var labels = new int[images];
        var offsets = Enumerable.Range(0, classes * width).Select(_ => random.NextDouble()).ToArray();
        var latent = new float[directions];
        for (var i = 0; i < images; i++)
        {
            labels[i] = i % classes;
            for (var j = 0; j < directions; j++)
            {
                latent[j] = (float)((random.NextDouble() - 0.5) * Math.Pow(j + 1, -0.8));
            }
            var row = rows.AsSpan(i * width, width);
            for (var f = 0; f < width; f++)
            {
                row[f] = (float)(offsets[labels[i] * width + f] + 0.05 * random.NextDouble());
            }
            for (var j = 0; j < directions; j++)
            {
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(basis.AsSpan(j * width, width), latent[j], row, row);
            }
            System.Numerics.Tensors.TensorPrimitives.Max(row, 0f, row);
        }
        return (rows, labels);
    }
}
