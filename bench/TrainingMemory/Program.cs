using System.Diagnostics;
using System.Globalization;
using System.Text;
using ServerlessClassifier.Bench;
using ServerlessClassifier.Bench.TrainingMemory;
using ServerlessClassifier.ModelCore.Inference;

// The training memory benchmark: the peak resident memory (VmHWM) of `trainjob train`, each run its own process,
// on a synthetic set of 2,000 and of 20,000 images, per mode. Training memory must not grow with the data set
// (features may; images must not): the goal is that ten times the images take at most 1.2x the memory.
// Usage:
//   dotnet run -c Release --project bench/TrainingMemory [-- --sizes 2000,20000] [--modes head,finetune,full]
//     [--before other/checkout/src/TrainJob/bin/Release/net10.0/ServerlessClassifier.TrainJob.dll] [--output docs/benchmarks.md]
// With every mode (the default) it rewrites its section of docs/benchmarks.md.
//   dotnet run -c Release --project bench/TrainingMemory -- --generate <folder> <count>   (only writes a synthetic set)
const double Goal = 1.2;
if (args is ["--generate", var folder, var count])
{
    Shapes.Write(folder, int.Parse(count, CultureInfo.InvariantCulture), seed: 1);
    return 0;
}
var sizes = (Option("--sizes") ?? "2000,20000").Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray();
var modes = (Option("--modes") ?? "head,finetune,full").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var before = Option("--before");
var output = Option("--output") ?? Path.Combine(BenchEnvironment.RepositoryRoot(), "docs", "benchmarks.md");
var trainJob = Path.Combine(BenchEnvironment.RepositoryRoot(), "src", "TrainJob", "bin", "Release", "net10.0", "ServerlessClassifier.TrainJob.dll");
if (!File.Exists(trainJob))
{
    Console.Error.WriteLine($"{trainJob} is missing: build first (dotnet build ServerlessClassifier.sln -c Release).");
    return 1;
}
var builds = before is null ? [("this build", trainJob)] : new[] { ("before", before), ("this build", trainJob) };
var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
Console.WriteLine($"Training memory benchmark: {string.Join(", ", modes)} on {string.Join(" and ", sizes.Select(n => n.ToString("N0", CultureInfo.InvariantCulture)))} synthetic images; " +
    $"{BenchEnvironment.Describe()}; CPU flags {BenchEnvironment.CpuFlags()} ({CpuFeatures.Describe()}); load average {loadBefore}");

var scratch = Directory.CreateTempSubdirectory("bench-training-memory-").FullName;
var rows = new List<Row>();
try
{
    foreach (var size in sizes)
    {
        var clock = Stopwatch.StartNew();
        Shapes.Write(Path.Combine(scratch, $"set-{size}"), size, seed: size);
        Console.WriteLine($"{size:N0} images written in {clock.Elapsed.TotalSeconds:F0} s");
    }
    foreach (var mode in modes)
    {
        foreach (var (build, dll) in builds)
        {
            var runs = new List<TrainRun>();
            foreach (var size in sizes)
            {
                var run = await TrainRun.MeasureAsync(dll, mode, Path.Combine(scratch, $"set-{size}"), Path.Combine(scratch, $"out-{mode}-{size}"), size);
                Console.WriteLine($"  {mode,-8} {build,-10} {size,7:N0} images: peak RSS {run.PeakMb,6:F0} MB, {run.Seconds,5:F0} s{(run.ExitCode == 0 ? "" : $", exit code {run.ExitCode}: {run.Tail}")}");
                runs.Add(run);
                Directory.Delete(Path.Combine(scratch, $"out-{mode}-{size}"), recursive: true);
            }
            rows.Add(new Row(mode, build, runs));
        }
    }
}
finally
{
    Directory.Delete(scratch, recursive: true);
}

var section = Section(rows, sizes, loadBefore, File.ReadAllText("/proc/loadavg").Trim());
Console.WriteLine();
Console.WriteLine(section);
if (Option("--modes") is null)
{
    DocumentSections.Replace(output, DocumentSections.TrainingMemory, section);
    Console.WriteLine($"Wrote the training memory section of {output}");
}
else
{
    Console.WriteLine($"(--modes: {output} left as it is; a run of every mode rewrites its training memory section)");
}
return rows.All(r => r.Runs.All(x => x.ExitCode == 0)) ? 0 : 1;

string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

string Section(List<Row> table, int[] counts, string load, string loadAfter)
{
    var (small, large) = (counts[0], counts[^1]);
    var text = new StringBuilder();
    text.AppendLine("## Training memory against the data set's size");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC on {BenchEnvironment.Describe()}; CPU flags {BenchEnvironment.CpuFlags()}; load average {load} at the start, {loadAfter} at the end (the machine is shared).");
    text.AppendLine();
    text.AppendLine(string.Create(CultureInfo.InvariantCulture, $"Peak resident memory (VmHWM) of `trainjob train`, each run its own process, on synthetic sets of {small:N0} and {large:N0} PNG images ") +
        $"(four coloured shapes on noise, 64 to 128 px, 20 % held out for validation): `{TrainRun.Arguments("<mode>")}`, and `--unfreeze layer4` in finetune " +
        "(random weights: the figures are about memory, not accuracy). The goal: the larger set takes at most 1.2x the smaller one's memory; the features, a few KB per image, may grow, the images may not.");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"| mode | build | {small:N0} images: peak RSS | {large:N0} images: peak RSS | ratio | goal | met | seconds ({small:N0} / {large:N0}) |");
    text.AppendLine("|---|---|---:|---:|---:|---|---|---:|");
    foreach (var row in table)
    {
        var (a, b) = (row.Runs[0], row.Runs[^1]);
        var failed = row.Runs.Any(r => r.ExitCode != 0);
        text.AppendLine(CultureInfo.InvariantCulture,
            $"| {row.Mode} | {row.Build} | {a.PeakMb:F0} MB | {b.PeakMb:F0} MB | {b.PeakMb / a.PeakMb:F2}x | <= {Goal:F1}x | {(failed ? "run failed" : b.PeakMb <= Goal * a.PeakMb ? "yes" : "no")} | {a.Seconds:F0} / {b.Seconds:F0} |");
    }
    text.AppendLine();
    text.AppendLine("What this can and cannot show: at 32 px a decoded working image is 4 to 8 KB and a preprocessed validation input 12 KB, so the copies " +
        "that full mode used to keep (every training image's working image, every validation image's input) would add only about 130 MB at 20,000 images; " +
        "at 224 px they are 200 to 400 KB and 600 KB per image (some 5.6 GB at 20,000). The guard against their return is the test that bounds the data path's " +
        "`training.images_in_memory` counter by a batch (`TrainingMemoryTests`); these figures measure everything else the process holds.");
    text.AppendLine();
    text.AppendLine("Rerun: `bash scripts/bench-training-memory.sh` (about twenty minutes on two cores; `-- --before <other build's ServerlessClassifier.TrainJob.dll>` adds that build's rows). It rewrites this section.");
    return text.ToString();
}

internal sealed record Row(string Mode, string Build, List<TrainRun> Runs);
