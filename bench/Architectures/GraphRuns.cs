using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ServerlessClassifier.Bench.Architectures;

/// <summary>
/// The child processes of the benchmark, so that each figure comes from a process of its own:
/// <c>--latency</c> times two graphs in turn (run A, run B, run A, ...: load changes hit both alike);
/// <c>--memory</c> loads one graph, runs it and reports the process's peak resident memory.
/// Both use the serving engine's session settings (ONNX Runtime's full graph optimisation, the same threads).
/// </summary>
internal static class GraphRuns
{
    public const string LatencyFlag = "--latency";
    public const string MemoryFlag = "--memory";

    /// <summary>A graph file with the names of its image input and the output that is fetched.</summary>
    public sealed record Graph(string File, string Input, string Output);

    public static int Latency(Graph a, Graph b, int size, int warmup, int runs, int threads)
    {
        using var first = Session(a.File, threads);
        using var second = Session(b.File, threads);
        var input = Input(size);
        var (timesA, timesB) = (new double[runs], new double[runs]);
        for (var i = -warmup; i < runs; i++)
        {
            var ta = Time(first, a, input, size);
            var tb = Time(second, b, input, size);
            if (i >= 0)
            {
                (timesA[i], timesB[i]) = (ta, tb);
            }
        }
        Console.WriteLine(JsonSerializer.Serialize(new { a = Summary(timesA), b = Summary(timesB) }));
        return 0;
    }

    public static int Memory(Graph graph, int size, int runs, int threads)
    {
        var before = PeakRssMb();
        var clock = Stopwatch.StartNew();
        using var session = Session(graph.File, threads);
        var sessionMs = clock.Elapsed.TotalMilliseconds;
        var input = Input(size);
        for (var i = 0; i < runs; i++)
        {
            Time(session, graph, input, size);
        }
        Console.WriteLine(JsonSerializer.Serialize(new { sessionMs, baselineRssMb = before, peakRssMb = PeakRssMb() }));
        return 0;
    }

    private static InferenceSession Session(string file, int threads)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        return new InferenceSession(file, options);
    }

    private static float[] Input(int size)
    {
        var random = new Random(5);
        return [.. Enumerable.Range(0, 3 * size * size).Select(_ => (float)((random.NextDouble() * 4) - 2))];
    }

    private static double Time(InferenceSession session, Graph graph, float[] input, int size)
    {
        var tensor = new DenseTensor<float>(input, [1, 3, size, size]);
        var clock = Stopwatch.StartNew();
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(graph.Input, tensor)], [graph.Output]);
        var elapsed = clock.Elapsed.TotalMilliseconds;
        _ = results[0].AsTensor<float>()[0];
        return elapsed;
    }

    private static object Summary(double[] times)
    {
        Array.Sort(times);
        return new { medianMs = Percentile(times, 0.5), p95Ms = Percentile(times, 0.95), runs = times.Length };
    }

    private static double Percentile(double[] sorted, double p)
    {
        var index = p * (sorted.Length - 1);
        var (low, high) = ((int)Math.Floor(index), (int)Math.Ceiling(index));
        return sorted[low] + ((sorted[high] - sorted[low]) * (index - low));
    }

    /// <summary>VmHWM of /proc/self/status: the most resident memory the process has had, in MB.</summary>
    private static double PeakRssMb()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal));
        return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
