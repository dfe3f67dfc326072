using System.Diagnostics;

namespace ServerlessClassifier.Bench;

/// <summary>Median and 95th percentile of repeated timings, in milliseconds.</summary>
internal sealed record Timing(double MedianMs, double P95Ms, int Runs)
{
    public static Timing Of(Action action, int warmup, int runs)
    {
        for (var i = 0; i < warmup; i++)
        {
            action();
        }
        var samples = new double[runs];
        for (var i = 0; i < runs; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            samples[i] = clock.Elapsed.TotalMilliseconds;
        }
        Array.Sort(samples);
        return new Timing(Percentile(samples, 0.5), Percentile(samples, 0.95), runs);
    }

    private static double Percentile(double[] sorted, double p)
    {
        var index = p * (sorted.Length - 1);
        var low = (int)Math.Floor(index);
        var high = (int)Math.Ceiling(index);
        return sorted[low] + ((sorted[high] - sorted[low]) * (index - low));
    }
}

/// <summary>One row of the results table.</summary>
internal sealed record ResultRow(string Group, string Measurement, string Value, string Reference, string Ratio, string Target, string Verdict);
