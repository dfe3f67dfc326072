using System.Globalization;
using System.Text;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessClassifier.Bench;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Storage;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

// The benchmark: every comparison is a ratio measured in this same run, so machine noise cancels.
// Usage: dotnet run -c Release --project bench [-- --quick] [--output docs/benchmarks.md]
if (args is [ColdStart.Flag, var coldConnection, var coldContainer, var coldImage, var coldCount])
{
    return await ColdStart.RunChildAsync(coldConnection, coldContainer, coldImage, int.Parse(coldCount, CultureInfo.InvariantCulture));
}

if (args is [TrainingBench.Flag, var trainRoot, var trainSample])
{
    return await TrainingBench.RunChildAsync(trainRoot, int.Parse(trainSample, CultureInfo.InvariantCulture));
}

var quick = args.Contains("--quick");
var storage = Environment.GetEnvironmentVariable("ClassifierStorage");
var outputPath = args.SkipWhile(a => a != "--output").Skip(1).FirstOrDefault() ?? Path.Combine(BenchEnvironment.RepositoryRoot(), "docs", "benchmarks.md");
var runs = quick ? 15 : 60;
var warmup = quick ? 3 : 10;
var rows = new List<ResultRow>();
var threads = OnnxEngineOptions.Default.IntraOpThreads;

TorchRuntime.EnsureInitialized();
set_num_threads(threads);
Console.WriteLine($"ServerlessClassifier benchmark: {runs} timed runs after {warmup} warm-up runs; {threads} intra-op threads for every engine.");

// The serving model: the default backbone (ONNX ResNet-18 imported into TorchSharp) with a 5-class head, exported and verified.
var pretrained = OnnxResNetImporter.DefaultDirectory;
var originalOnnx = Path.Combine(pretrained, OnnxResNetImporter.ModelFileName);
var meanImage = OnnxResNetImporter.LoadMeanImage(Path.Combine(pretrained, OnnxResNetImporter.PreprocessFileName));
manual_seed(1);
using var model = new ImageClassifier(OnnxResNetImporter.LoadBackbone(originalOnnx), HeadSpec.Linear(5));
model.eval();
var preprocessing = OnnxResNetImporter.Preprocessing;
var preprocessor = new ImagePreprocessor(preprocessing, meanImage);
var decoder = new ImageDecoder();
var photo224 = MakePhotoJpeg(224, 224, seed: 1);
var photo12MP = MakePhotoJpeg(4000, 3000, seed: 2);
float[] input;
using (var decoded = decoder.Decode(photo224))
{
    input = preprocessor.Preprocess(decoded);
}
var folder = Path.Combine(Path.GetTempPath(), $"bench-model-{Guid.NewGuid():N}");
var manifest = ModelCheckpoint.SaveForServing(model, new ModelManifest
{
    Backbone = BackboneCatalog.DefaultId,
    Head = HeadSpec.Linear(5),
    Labels = ["a", "b", "c", "d", "e"],
    Preprocessing = preprocessing,
}, folder, [input], meanImage);
var package = await ModelPackage.LoadAsync(folder);
using var pipeline = ClassificationPipeline.CreateServing(package);

// 1. Forward latency for one image.
using var plainOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
using var plain = new InferenceSession(originalOnnx, plainOptions);
var plainInput = new DenseTensor<float>(input, [1, 3, 224, 224]);
var plainTiming = Timing.Of(() =>
{
    using var _ = plain.Run([NamedOnnxValue.CreateFromTensor("Input247", plainInput)]);
}, warmup, runs);
var servingTiming = Timing.Of(() => pipeline.Engine.PredictProbabilities(input, 1), warmup, runs);
using var torchEngine = new TorchSharpEngine(model, 224, ownsModel: false);
var torchTiming = Timing.Of(() => torchEngine.PredictProbabilities(input, 1), Math.Max(2, warmup / 2), Math.Max(10, runs / 3));
rows.Add(Row("1. forward, 1 image", "plain ONNX Runtime, original ResNet18.onnx (reference)", plainTiming, null, ""));
rows.Add(Row("1. forward, 1 image", "serving engine (exported graph + head + softmax)", servingTiming, plainTiming, "<= 1.0x plain ORT", servingTiming.MedianMs <= plainTiming.MedianMs));
rows.Add(Row("1. forward, 1 image", "TorchSharp eager, same model", torchTiming, plainTiming, "(reference)"));

// 2. End to end: bytes in, top-k out.
var e2e224 = Timing.Of(() => pipeline.Classify(photo224, top: 5), warmup, runs);
var e2e12 = Timing.Of(() => pipeline.Classify(photo12MP, top: 5), Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
var decode12 = Timing.Of(() => { using var _ = decoder.Decode(photo12MP); }, Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
rows.Add(Row("2. end to end", $"224x224 JPEG ({photo224.Length / 1024} KB) -> top-5", e2e224, plainTiming, "<= 35 ms", e2e224.MedianMs <= 35));
rows.Add(Row("2. end to end", $"4000x3000 JPEG ({photo12MP.Length / 1024} KB) -> top-5", e2e12, plainTiming, "<= 150 ms", e2e12.MedianMs <= 150));
var decode12Scaled = Timing.Of(() => { using var _ = decoder.Decode(photo12MP, preprocessor.DecodeShorterSide); }, Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
rows.Add(Row("2. end to end", "  12 MP JPEG decode at reduced scale (SkiaSharp, as served)", decode12Scaled, decode12, ""));
rows.Add(Row("2. end to end", "  12 MP JPEG full decode (ImageSharp; not served, reference)", decode12, e2e12, ""));

// 3. Batch throughput.
double? singleRate = null;
foreach (var batch in new[] { 1, 8, 32 })
{
    var batchInput = Enumerable.Repeat(input, batch).SelectMany(x => x).ToArray();
    var timing = Timing.Of(() => pipeline.Engine.PredictProbabilities(batchInput, batch), Math.Max(1, warmup / 2), Math.Max(5, runs / (batch == 32 ? 6 : 3)));
    var perSecond = batch * 1000 / timing.MedianMs;
    singleRate ??= perSecond;
    rows.Add(new ResultRow("3. batch throughput", $"serving engine, batch {batch}", $"{perSecond:F1} images/s (median {timing.MedianMs:F1} ms per batch)",
        $"{singleRate:F1} images/s at batch 1", $"{perSecond / singleRate:F2}x", "", ""));
}

// 5. Cold start and 7. serving memory: a fresh process loads the published model from Azurite.
if (string.IsNullOrEmpty(storage))
{
    Console.WriteLine("ClassifierStorage is not set: cold start and serving memory are skipped (run scripts/bench.sh, which starts Azurite).");
}
else
{
    var models = new Azure.Storage.Blobs.BlobContainerClient(storage, $"bench-models-{Guid.NewGuid():N}");
    await models.CreateAsync();
    await new ModelStore(models).PublishAsync(folder);
    var imagePath = Path.Combine(Path.GetTempPath(), $"bench-photo-{Guid.NewGuid():N}.jpg");
    await File.WriteAllBytesAsync(imagePath, photo12MP);
    var cold = await ColdStart.MeasureAsync(storage, models.Name, imagePath, predictions: 50);
    rows.Add(new ResultRow("5. cold start", "process start to first prediction (model in Azurite)", $"{cold["total"]:F0} ms", "", "", "<= 1.0 s", cold["total"] <= 1000 ? "met" : "NOT met"));
    rows.Add(new ResultRow("5. cold start", "  runtime load (process start to Main)", $"{cold["runtime"]:F0} ms", "", "", "", ""));
    rows.Add(new ResultRow("5. cold start", $"  model download and hash check ({cold["bytes"] / 1048576:F0} MB)", $"{cold["download"]:F0} ms", "", "", "", ""));
    rows.Add(new ResultRow("5. cold start", "  ONNX Runtime session creation", $"{cold["session"]:F0} ms", "", "", "", ""));
    rows.Add(new ResultRow("5. cold start", "  first prediction (12 MP JPEG)", $"{cold["first"]:F0} ms", "", "", "", ""));
    if (HostColdStart.Find() is { } runScript)
    {
        // 5. The same model under the Azure Functions host (run.sh): host start to the first answers, fresh host per run.
        var hostRuns = await HostColdStart.MeasureAsync(runScript, BenchEnvironment.RepositoryRoot(), storage, models.Name, photo224, runs: 3);
        var firstMs = hostRuns.Select(r => r.FirstMs).Order().ToList();
        var healthMs = hostRuns.Select(r => r.HealthMs).Order().ToList();
        rows.Add(new ResultRow("5. cold start", $"Functions host (run.sh) start to first 200 of POST /api/classify, median of {hostRuns.Count} (runs: {string.Join(", ", firstMs.Select(v => v.ToString("F0", CultureInfo.InvariantCulture)))} ms)",
            $"{firstMs[firstMs.Count / 2]:F0} ms", $"{cold["total"]:F0} ms in-process", $"{firstMs[firstMs.Count / 2] / cold["total"]:F1}x", "", ""));
        rows.Add(new ResultRow("5. cold start", "  host start to /api/health 200 (host and worker process up)", $"{healthMs[healthMs.Count / 2]:F0} ms", "", "", "", ""));
    }
    else
    {
        Console.WriteLine("FUNCTIONS_HOST_DIR is not set: the cold start under the Functions host is skipped.");
    }
    rows.Add(new ResultRow("7. memory", "serving process peak RSS (after 50 predictions of the 12 MP photo)", $"{cold["peakMb"]:F0} MB", "", "", "<= 450 MB", cold["peakMb"] <= 450 ? "met" : "NOT met"));
    // 4. Concurrent throughput through the Functions app's service, micro-batching off vs on.
    foreach (var callers in new[] { 1, 4, 16 })
    {
        var perCaller = quick ? 4 : Math.Max(4, 64 / callers);
        var off = await ConcurrencyBench.ImagesPerSecondAsync(storage, models.Name, microBatching: false, callers, perCaller, photo224);
        var on = await ConcurrencyBench.ImagesPerSecondAsync(storage, models.Name, microBatching: true, callers, perCaller, photo224);
        var queued = await ConcurrencyBench.ImagesPerSecondAsync(storage, models.Name, microBatching: true, callers, perCaller, photo224, maxWaitMilliseconds: 0);
        rows.Add(new ResultRow("4. concurrency", $"{callers} concurrent callers, 224px JPEG, micro-batching on, wait up to 5 ms (off: reference)", $"{on:F1} images/s", $"{off:F1} images/s", $"{on / off:F2}x",
            callers == 16 ? ">= 1.5x with 16 callers" : "", callers == 16 ? (on / off >= 1.5 ? "met" : "NOT met") : ""));
        rows.Add(new ResultRow("4. concurrency", $"{callers} concurrent callers, micro-batching on, no wait (batches only what is queued)", $"{queued:F1} images/s", $"{off:F1} images/s", $"{queued / off:F2}x", "", ""));
    }
    File.Delete(imagePath);
    await models.DeleteAsync();
}

// 7. Size of the published Functions app.
var publishDir = Path.Combine(Path.GetTempPath(), $"bench-publish-{Guid.NewGuid():N}");
var publish = System.Diagnostics.Process.Start("dotnet", ["publish", Path.Combine(BenchEnvironment.RepositoryRoot(), "src", "Functions"), "-c", "Release", "-r", "linux-x64", "--self-contained", "false", "-o", publishDir, "-nologo", "-v", "q"]);
await publish.WaitForExitAsync();
if (publish.ExitCode == 0)
{
    var files = Directory.GetFiles(publishDir, "*", SearchOption.AllDirectories);
    var megabytes = files.Sum(f => new FileInfo(f).Length) / 1048576.0;
    var torch = files.Count(f => Path.GetFileName(f).StartsWith("libtorch", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("libc10", StringComparison.Ordinal));
    rows.Add(new ResultRow("7. size", $"published Functions app (linux-x64, framework-dependent; {files.Length} files, {torch} libtorch files)", $"{megabytes:F0} MB", "", "", "<= 150 MB", megabytes <= 150 ? "met" : "NOT met"));
    Directory.Delete(publishDir, recursive: true);
}

// 6. Training: head mode on ~2,000 real images x 10 epochs vs the seed recipe vs one feature pass.
var emoji = Path.Combine(Path.GetTempPath(), $"bench-emoji-{Guid.NewGuid():N}");
var node = System.Diagnostics.Process.Start("node", [Path.Combine(BenchEnvironment.RepositoryRoot(), "scripts", "emoji-dataset.mjs"), emoji, "--all", "--per-class", "500"]);
await node.WaitForExitAsync();
var trainingRoot = TrainingBench.PrepareData(emoji, quick ? 500 : 2000);
var training = await TrainingBench.MeasureAsync(trainingRoot, seedRecipeSample: quick ? 64 : 256);
var n = (int)training["images"];
rows.Add(new ResultRow("6. training", $"head mode, {n} images x 10 epochs, end to end (decode, features once, 10 epochs)", $"{training["headTotal"]:F1} s",
    "", "", "<= 60 s", training["headTotal"] <= 60 ? "met" : "NOT met"));
rows.Add(new ResultRow("6. training", "  one feature-extraction pass (serving engine)", $"{training["features"]:F1} s ({n / training["features"]:F0} images/s)", $"{training["headTotal"]:F1} s", $"{training["features"] / training["headTotal"]:F2}x of head mode", "", ""));
rows.Add(new ResultRow("6. training", "  10 head epochs on cached features", $"{training["epochs"]:F2} s", "", "", "", ""));
rows.Add(new ResultRow("6. training", $"seed recipe (backbone recomputed every epoch), extrapolated from {training["sample"]:F0} images measured", $"{training["seedEstimate"]:F0} s",
    $"{training["headTotal"]:F1} s", $"{training["seedEstimate"] / training["headTotal"]:F1}x slower than head mode", "", ""));
rows.Add(new ResultRow("6. training", $"  validation accuracy of the head-mode model ({n} emoji, 9 categories)", $"{training["accuracy"]:P1}", "", "", "", ""));
rows.Add(new ResultRow("7. memory", "training process peak RSS (head mode + seed recipe sample)", $"{training["peakMb"]:F0} MB", "", "", "", ""));
Directory.Delete(emoji, recursive: true);
Directory.Delete(trainingRoot, recursive: true);

Directory.Delete(folder, recursive: true);
PrintAndWrite(rows, outputPath, quick);
return 0;

static ResultRow Row(string group, string measurement, Timing timing, Timing? reference, string target, bool? met = null) =>
    new(group, measurement, $"median {timing.MedianMs:F1} ms, p95 {timing.P95Ms:F1} ms",
        reference is null ? "" : $"{reference.MedianMs:F1} ms",
        reference is null ? "" : $"{timing.MedianMs / reference.MedianMs:F2}x",
        target, met is null ? "" : met.Value ? "met" : "NOT met");

// A photo-like JPEG: smooth gradients, a few shapes and sensor-like noise, quality 90.
static byte[] MakePhotoJpeg(int width, int height, int seed)
{
    var random = new Random(seed);
    using var image = new Image<Rgb24>(width, height);
    image.ProcessPixelRows(rows =>
    {
        for (var y = 0; y < rows.Height; y++)
        {
            var row = rows.GetRowSpan(y);
            for (var x = 0; x < row.Length; x++)
            {
                var fx = (double)x / width;
                var fy = (double)y / height;
                var inCircle = Math.Pow(fx - 0.6, 2) + Math.Pow(fy - 0.45, 2) < 0.04;
                var r = inCircle ? 200 : 60 + (120 * fx);
                var g = inCircle ? 80 : 90 + (100 * fy);
                var b = inCircle ? 60 : 140 - (80 * fx * fy);
                var noise = random.Next(-12, 13);
                row[x] = new Rgb24(Clamp(r + noise), Clamp(g + noise), Clamp(b + noise));
            }
        }
    });
    using var stream = new MemoryStream();
    image.SaveAsJpeg(stream, new JpegEncoder { Quality = 90 });
    return stream.ToArray();

    static byte Clamp(double v) => (byte)Math.Clamp(v, 0, 255);
}

static void PrintAndWrite(List<ResultRow> rows, string path, bool quick)
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
    document.AppendLine("Every ratio compares two figures taken in the same run, so the machine's noise mostly cancels. Timings are medians (and 95th percentiles) after warm-up.");
    document.AppendLine();
    document.Append(table);
    document.AppendLine();
    document.AppendLine("Rerun: `bash scripts/bench.sh` (about four minutes; it starts a private Azurite for the cold-start and concurrency figures; `bash scripts/bench.sh --quick` for a shorter run; with `FUNCTIONS_HOST_DIR` naming an Azure Functions host folder with `run.sh`, it also times the cold start under that host). It rewrites this file.");
    var notes = Path.Combine(BenchEnvironment.RepositoryRoot(), "bench", "NOTES.md");
    if (File.Exists(notes))
    {
        document.AppendLine();
        document.Append(File.ReadAllText(notes));
    }
    // The architecture benchmark's section (bench/Architectures) is its own: kept as the file has it.
    if (DocumentSections.Extract(path) is { } architectures)
    {
        document.AppendLine();
        document.AppendLine(architectures);
    }
    Directory.CreateDirectory(Path.GetDirectoryName(path)!);
    File.WriteAllText(path, document.ToString());
    Console.WriteLine($"Wrote {path}");
}
