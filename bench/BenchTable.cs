using System.Globalization;
using System.Text;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Bench;

/// <summary>The results table: printed, and written with the machine's description and the hand-written notes as docs/benchmarks.md.</summary>
internal static class BenchTable
{
    public static ResultRow Row(string group, string measurement, Timing timing, Timing? reference, string target, bool? met = null) =>
        new(group, measurement, $"median {timing.MedianMs:F1} ms, p95 {timing.P95Ms:F1} ms",
            reference is null ? "" : $"{reference.MedianMs:F1} ms",
            reference is null ? "" : $"{timing.MedianMs / reference.MedianMs:F2}x",
            target, Verdict(met));

    public static string Verdict(bool? met) => met is null ? "" : met.Value ? "met" : "NOT met";

    public static void PrintAndWrite(IReadOnlyList<ResultRow> rows, string path, bool quick, string repositoryRoot, double loadBefore, double loadAfter)
    {
        var table = new StringBuilder();
        table.AppendLine("| group | measurement | value | reference (same run) | ratio | target | verdict |");
        table.AppendLine("|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            table.AppendLine(CultureInfo.InvariantCulture, $"| {r.Group} | {r.Measurement} | {r.Value} | {r.Reference} | {r.Ratio} | {r.Target} | {r.Verdict} |");
        }
        Console.WriteLine();
        Console.WriteLine(table.ToString());

        var document = new StringBuilder();
        document.AppendLine("# Benchmarks");
        document.AppendLine();
        document.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {BenchEnvironment.Describe()}{(quick ? " (quick run: fewer repetitions)" : "")}.");
        document.AppendLine();
        document.AppendLine(CultureInfo.InvariantCulture, $"CPU flags that pick ONNX Runtime's kernels: {CpuFeatures.Describe()}. Load average (1 min) {loadBefore:F1} at the start and {loadAfter:F1} at the end of the run: the machine is shared, so timings are noisy.");
        document.AppendLine();
        document.AppendLine("Every ratio compares two figures taken in the same run, so the machine's noise mostly cancels. Timings are medians (and 95th percentiles) after warm-up.");
        document.AppendLine();
        document.Append(table);
        document.AppendLine();
        document.AppendLine("Rerun: `bash scripts/bench.sh` (about ten minutes; it starts a private Azurite for the cold-start and concurrency figures; `bash scripts/bench.sh --quick` for a shorter run; with `FUNCTIONS_HOST_DIR` naming an Azure Functions host folder with `run.sh`, it also times the cold start under that host). It rewrites this file.");
        var notes = Path.Combine(repositoryRoot, "bench", "NOTES.md");
        if (File.Exists(notes))
        {
            document.AppendLine();
            document.Append(File.ReadAllText(notes));
        }
        // The sections of the other benchmarks (bench/Architectures, bench/TrainingMemory) are theirs: kept as the file has them.
        foreach (var section in DocumentSections.All)
        {
            if (DocumentSections.Extract(path, section) is { } kept)
            {
                document.AppendLine();
                document.AppendLine(kept);
            }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, document.ToString());
        Console.WriteLine($"Wrote {path}");
    }

    /// <summary>The 1-minute load average (Linux), NaN elsewhere.</summary>
    public static double LoadAverage() =>
        File.Exists("/proc/loadavg") ? double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture) : double.NaN;
}
