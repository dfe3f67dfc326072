using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessClassifier.Bench;
using ServerlessClassifier.Bench.Architectures;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;

// The architecture benchmark: for each backbone of the registry, the same random-init torchvision model
// (num_classes=5) exported twice, by this product (OnnxExport, from the state_dict PyTorch saved) and by
// torch.onnx.export (Debian's python3-torch), then run by ONNX Runtime with the serving engine's settings
// in the same run: batch-1 latency (the two graphs timed in turn in one child process) and peak memory
// (one child process per graph). Usage:
//   dotnet run -c Release --project bench/Architectures [-- --only vgg16,densenet121] [--runs 20] [--output docs/benchmarks.md]
const int Size = 224;
var threads = OnnxEngineOptions.Default.IntraOpThreads;
if (args is [GraphRuns.LatencyFlag, var fa, var ia, var oa, var fb, var ib, var ob, var warm, var count])
{
    return GraphRuns.Latency(new(fa, ia, oa), new(fb, ib, ob), Size, int.Parse(warm, CultureInfo.InvariantCulture), int.Parse(count, CultureInfo.InvariantCulture), threads);
}
if (args is [GraphRuns.MemoryFlag, var fm, var im, var om, var memoryRuns])
{
    return GraphRuns.Memory(new(fm, im, om), Size, int.Parse(memoryRuns, CultureInfo.InvariantCulture), threads);
}

var only = Option("--only")?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
var runs = int.Parse(Option("--runs") ?? "20", CultureInfo.InvariantCulture);
var output = Option("--output") ?? Path.Combine(BenchEnvironment.RepositoryRoot(), "docs", "benchmarks.md");
var ids = BackboneCatalog.TorchVisionIds.Where(id => only is null || only.Contains(id)).ToList();
var scratch = Directory.CreateTempSubdirectory("bench-architectures-").FullName;
var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
TorchRuntime.EnsureInitialized();
Console.WriteLine($"Architecture benchmark: {ids.Count} architectures at {Size} x {Size}, batch 1, {runs} timed runs after 3 warm-up runs, {threads} intra-op threads; load average {loadBefore}");

var rows = new List<Row>();
string? versions = null;
try
{
    for (var i = 0; i < ids.Count; i++)
    {
        var id = ids[i];
        var folder = Path.Combine(scratch, id);
        Console.WriteLine($"[{i + 1}/{ids.Count}] {id}: torch.onnx.export ...");
        var peer = await Child("/usr/bin/python3", [Path.Combine(AppContext.BaseDirectory, "peers", "torch_export.py"), id, Size.ToString(CultureInfo.InvariantCulture), folder]);
        versions ??= $"torch {peer.GetProperty("torch").GetString()}, torchvision {peer.GetProperty("torchvision").GetString()}";
        var torchOnnx = Path.Combine(folder, $"{id}.torch.onnx");
        var ours = Path.Combine(folder, $"{id}.ours.onnx");

        Console.WriteLine($"[{i + 1}/{ids.Count}] {id}: our export, verified against TorchSharp ...");
        var clock = Stopwatch.StartNew();
        long parameters;
        double parity;
        var inputs = RandomInputs(2);
        using (var loaded = TorchVisionWeights.CreateClassifier(Path.Combine(folder, $"{id}.pth"), HeadSpec.Linear(5)).Model)
        {
            loaded.eval();
            parameters = loaded.parameters().Sum(p => p.numel());
            var export = OnnxExport.ExportVerified(loaded, Size, inputs);
            await File.WriteAllBytesAsync(ours, export.Onnx);
            parity = export.MaxAbsDifference;
        }
        var exportSeconds = clock.Elapsed.TotalSeconds;
        var graphs = GraphAgreement(ours, torchOnnx, inputs[0]);
        GC.Collect();

        Console.WriteLine($"[{i + 1}/{ids.Count}] {id}: latency and memory ...");
        var oursGraph = new GraphRuns.Graph(ours, OnnxExport.InputName, OnnxExport.ProbabilitiesName);
        var torchGraph = new GraphRuns.Graph(torchOnnx, "input", "logits");
        // Alternate which graph runs first from one architecture to the next.
        var (first, second) = i % 2 == 0 ? (oursGraph, torchGraph) : (torchGraph, oursGraph);
        var latency = await Self(GraphRuns.LatencyFlag, first.File, first.Input, first.Output, second.File, second.Input, second.Output, "3", runs.ToString(CultureInfo.InvariantCulture));
        var (oursLatency, torchLatency) = i % 2 == 0 ? (latency.GetProperty("a"), latency.GetProperty("b")) : (latency.GetProperty("b"), latency.GetProperty("a"));
        var oursMemory = await Self(GraphRuns.MemoryFlag, oursGraph.File, oursGraph.Input, oursGraph.Output, "3");
        var torchMemory = await Self(GraphRuns.MemoryFlag, torchGraph.File, torchGraph.Input, torchGraph.Output, "3");
        var row = new Row(id, parameters, new FileInfo(ours).Length, new FileInfo(torchOnnx).Length,
            oursLatency.GetProperty("medianMs").GetDouble(), oursLatency.GetProperty("p95Ms").GetDouble(),
            torchLatency.GetProperty("medianMs").GetDouble(), torchLatency.GetProperty("p95Ms").GetDouble(),
            oursMemory.GetProperty("peakRssMb").GetDouble(), torchMemory.GetProperty("peakRssMb").GetDouble(),
            oursMemory.GetProperty("sessionMs").GetDouble(), torchMemory.GetProperty("sessionMs").GetDouble(),
            parity, graphs, exportSeconds);
        rows.Add(row);
        Console.WriteLine($"    {row.Summary()}");
        Directory.Delete(folder, recursive: true);
    }
}
finally
{
    Directory.Delete(scratch, recursive: true);
}

var section = Section(rows, versions ?? "", runs, loadBefore, File.ReadAllText("/proc/loadavg").Trim());
Console.WriteLine();
Console.WriteLine(section);
if (only is null)
{
    DocumentSections.Replace(output, DocumentSections.Architectures, section);
    Console.WriteLine($"Wrote the architecture section of {output}");
}
else
{
    Console.WriteLine($"(--only: {output} left as it is; a full run rewrites its architecture section)");
}
return 0;

string? Option(string name) => args.SkipWhile(a => a != name).Skip(1).FirstOrDefault();

static List<float[]> RandomInputs(int count)
{
    var random = new Random(9);
    return [.. Enumerable.Range(0, count).Select(_ => Enumerable.Range(0, 3 * Size * Size).Select(_ => (float)((random.NextDouble() * 4) - 2)).ToArray())];
}

// Largest |p_ours - softmax(logits_torch)| on one input: the two graphs compute the same model.
static double GraphAgreement(string ours, string torchOnnx, float[] input)
{
    using var a = new InferenceSession(ours);
    using var b = new InferenceSession(torchOnnx);
    var tensor = new DenseTensor<float>(input, [1, 3, Size, Size]);
    using var pa = a.Run([NamedOnnxValue.CreateFromTensor(OnnxExport.InputName, tensor)], [OnnxExport.ProbabilitiesName]);
    using var pb = b.Run([NamedOnnxValue.CreateFromTensor("input", tensor)], ["logits"]);
    var probabilities = pa[0].AsTensor<float>().ToArray();
    var logits = pb[0].AsTensor<float>().ToArray();
    var max = logits.Max();
    var exp = logits.Select(l => Math.Exp(l - max)).ToArray();
    return probabilities.Select((p, k) => Math.Abs(p - (exp[k] / exp.Sum()))).Max();
}

static async Task<JsonElement> Self(params string[] arguments)
{
    var host = Environment.ProcessPath!;
    string[] prefix = Path.GetFileNameWithoutExtension(host) == "dotnet" ? [typeof(GraphRuns).Assembly.Location] : [];
    return await Child(host, [.. prefix, .. arguments]);
}

static async Task<JsonElement> Child(string file, IEnumerable<string> arguments)
{
    var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
    using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
    var stdout = process.StandardOutput.ReadToEndAsync();
    var stderr = process.StandardError.ReadToEndAsync();
    await process.WaitForExitAsync();
    var line = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{'));
    if (process.ExitCode != 0 || line is null)
    {
        throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({process.ExitCode}): {await stdout}\n{await stderr}");
    }
    using var document = JsonDocument.Parse(line);
    return document.RootElement.Clone();
}

static string Section(IReadOnlyList<Row> rows, string versions, int runs, string loadBefore, string loadAfter)
{
    var text = new StringBuilder();
    text.AppendLine("## Every architecture: our exported graph against torch.onnx.export");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd HH:mm} UTC by `bash scripts/bench-architectures.sh` on {BenchEnvironment.Describe()}; {versions}; ONNX Runtime {typeof(InferenceSession).Assembly.GetName().Version}.");
    text.AppendLine(CultureInfo.InvariantCulture, $"CPU flags: {BenchEnvironment.CpuFlags()}. Load average (1, 5, 15 min) {loadBefore} at the start, {loadAfter} at the end: the machine is shared, so absolute timings are noisy; the ratios compare two graphs timed in turn in one process.");
    text.AppendLine();
    text.AppendLine(CultureInfo.InvariantCulture, $"Each row: torchvision's model with random weights and a 5-class classifier, its `state_dict` saved by PyTorch; **ours** is the graph `train` publishes (exported from that `state_dict` by `OnnxExport`, verified against TorchSharp, with the softmax and the `features` output), **torch** is `torch.onnx.export` of the same model (opset 13, constant folding). Both run in ONNX Runtime with the serving settings (full graph optimisation, the same threads), batch 1, {Size} x {Size}; latency is the median (p95) of {runs} runs after 3 warm-up runs, the two graphs alternating; memory is the peak resident set of a process that loads the graph and runs it 3 times. Goal: ours at most 1.0x torch.");
    text.AppendLine();
    text.AppendLine("| architecture | parameters | graph ours / torch | latency ours | latency torch | ratio | peak memory ours / torch | ratio | session ours / torch | goal (<= 1.0x latency and memory) |");
    text.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
    foreach (var row in rows)
    {
        text.AppendLine(row.TableLine());
    }
    text.AppendLine();
    var latencyMet = rows.Count(r => r.LatencyRatio <= 1.0);
    var memoryMet = rows.Count(r => r.MemoryRatio <= 1.0);
    text.AppendLine(CultureInfo.InvariantCulture, $"Latency at most 1.0x in {latencyMet} of {rows.Count} rows, memory in {memoryMet} of {rows.Count}. Every exported graph matched TorchSharp within {rows.Max(r => r.Parity):E1} (largest probability difference, the check `train` makes before it publishes) and torch's graph within {rows.Max(r => r.Agreement):E1} (probabilities against the softmax of its logits).");
    return text.ToString();
}

/// <summary>One architecture's figures.</summary>
internal sealed record Row(string Id, long Parameters, long OursBytes, long TorchBytes, double OursMedian, double OursP95, double TorchMedian, double TorchP95,
    double OursPeakMb, double TorchPeakMb, double OursSessionMs, double TorchSessionMs, double Parity, double Agreement, double ExportSeconds)
{
    /// <summary>Ours over torch's median, to the two decimals shown (the verdict is that of the figure printed).</summary>
    public double LatencyRatio => Math.Round(OursMedian / TorchMedian, 2);

    public double MemoryRatio => Math.Round(OursPeakMb / TorchPeakMb, 2);

    public string Summary() => string.Create(CultureInfo.InvariantCulture,
        $"latency {OursMedian:F1} ms vs {TorchMedian:F1} ms ({LatencyRatio:F2}x); peak memory {OursPeakMb:F0} MB vs {TorchPeakMb:F0} MB ({MemoryRatio:F2}x); export {ExportSeconds:F1} s, parity {Parity:E1}, graphs agree {Agreement:E1}");

    public string TableLine()
    {
        var verdict = LatencyRatio <= 1.0 && MemoryRatio <= 1.0 ? "met" : LatencyRatio <= 1.0 ? "latency met, memory NOT met" : MemoryRatio <= 1.0 ? "memory met, latency NOT met" : "NOT met";
        return string.Create(CultureInfo.InvariantCulture,
            $"| {Id} | {Parameters / 1e6:F1} M | {OursBytes / 1e6:F0} / {TorchBytes / 1e6:F0} MB | {OursMedian:F1} ms (p95 {OursP95:F1}) | {TorchMedian:F1} ms (p95 {TorchP95:F1}) | {LatencyRatio:F2}x | {OursPeakMb:F0} / {TorchPeakMb:F0} MB | {MemoryRatio:F2}x | {OursSessionMs / 1000:F1} / {TorchSessionMs / 1000:F1} s | {verdict} |");
    }
}
