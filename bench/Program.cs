using System.Globalization;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.Bench;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Storage;
using static ServerlessClassifier.Bench.BenchTable;
using static TorchSharp.torch;

// The benchmark: every comparison is a ratio measured in this same run, so machine noise cancels.
// Usage: dotnet run -c Release --project bench [-- --quick] [--output docs/benchmarks.md]
// (or -- --two-models: serving memory with two models loaded in one instance, printed, docs/benchmarks.md untouched)
if (args is [ColdStart.Flag, var coldConnection, var coldContainer, var coldImage, var coldCount, var coldCache, var coldMode])
{
    return await ColdStart.RunChildAsync(coldConnection, coldContainer, coldImage, int.Parse(coldCount, CultureInfo.InvariantCulture), coldCache == "-" ? null : coldCache, coldMode == "cached-start");
}

if (args is [ColdStartCache.Flag])
{
    TorchRuntime.EnsureInitialized();
    return await ColdStartCache.RunAloneAsync(Environment.GetEnvironmentVariable("ClassifierStorage") ?? throw new InvalidOperationException("--cold-start-cache needs ClassifierStorage (scripts/bench.sh --cold-start-cache starts Azurite)."),
        BenchEnvironment.RepositoryRoot());
}

if (args.Length > 0 && args[0] == ColdStartCache.ReadyToRunFlag)
{
    TorchRuntime.EnsureInitialized();
    return await ColdStartCache.RunReadyToRunAsync(Environment.GetEnvironmentVariable("ClassifierStorage") ?? throw new InvalidOperationException("--host-cold-start-r2r needs ClassifierStorage (scripts/bench.sh --host-cold-start-r2r starts Azurite)."),
        BenchEnvironment.RepositoryRoot(), args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 3);
}

if (args is [TrainingBench.Flag, var trainRoot, var trainSample])
{
    return await TrainingBench.RunChildAsync(trainRoot, int.Parse(trainSample, CultureInfo.InvariantCulture));
}

if (args is [TwoModelMemory.ChildFlag, var twoConnection, var twoContainer, var twoImage, var twoCount, var twoPredictions, var twoReturnFreed, var twoCache])
{
    return await TwoModelMemory.RunChildAsync(twoConnection, twoContainer, twoImage, int.Parse(twoCount, CultureInfo.InvariantCulture), int.Parse(twoPredictions, CultureInfo.InvariantCulture), twoReturnFreed == "on", twoCache == "-" ? null : twoCache);
}

if (args is [TwoModelMemory.Flag])
{
    TorchRuntime.EnsureInitialized();
    return await TwoModelMemory.RunAloneAsync(Environment.GetEnvironmentVariable("ClassifierStorage") ?? throw new InvalidOperationException("--two-models needs ClassifierStorage (scripts/bench.sh --two-models starts Azurite)."),
        BenchEnvironment.RepositoryRoot(), predictions: 25);
}

if (args is [HeadVsMlNet.ChildFlag, var headTrain, var headTest])
{
    return await HeadVsMlNet.RunChildAsync(headTrain, headTest);
}

if (args.Length > 0 && args[0] == HeadVsMlNet.Flag)
{
    return await HeadVsMlNet.RunAsync(args.Length > 1 ? int.Parse(args[1], CultureInfo.InvariantCulture) : 2000, args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 200);
}

if (args is [Int8CalibrationBench.Flag, var calibrationImages, var calibrationChecks, var calibrationSizes])
{
    return await Int8CalibrationBench.RunAsync(int.Parse(calibrationImages, CultureInfo.InvariantCulture), int.Parse(calibrationChecks, CultureInfo.InvariantCulture),
        [.. calibrationSizes.Split(',').Select(a => int.Parse(a, CultureInfo.InvariantCulture))]);
}

if (args.Length > 0 && args[0] == OodBench.Flag)
{
    return OodBench.Run(args.Length > 1 ? [.. args[1].Split(',').Select(a => int.Parse(a, CultureInfo.InvariantCulture))] : [32, 2000],
        args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 4096);
}

if (args is [ExplainBench.Flag, var explainModel])
{
    return await ExplainBench.RunAloneAsync(explainModel);
}

var quick = args.Contains("--quick");
var storage = Environment.GetEnvironmentVariable("ClassifierStorage");
var repository = BenchEnvironment.RepositoryRoot();
var outputPath = args.SkipWhile(a => a != "--output").Skip(1).FirstOrDefault() ?? Path.Combine(repository, "docs", "benchmarks.md");
var runs = quick ? 15 : 60;
var warmup = quick ? 3 : 10;
var rows = new List<ResultRow>();
var threads = OnnxEngineOptions.Default.IntraOpThreads;
var loadBefore = LoadAverage();

TorchRuntime.EnsureInitialized();
set_num_threads(threads);
Console.WriteLine($"ServerlessClassifier benchmark: {runs} timed runs after {warmup} warm-up runs; {threads} intra-op threads for every engine; CPU {CpuFeatures.Describe()}.");

// Real labelled images (Twitter emoji, nine categories) for the served model and the training figures.
var emoji = await BenchEmoji.ExtractAsync(repository);

// The served model: head mode on 270 emoji, saved with its fp32 graph and with its checked int8 graph.
var servingRoot = TrainingBench.PrepareData(emoji, 270);
using var models = await ServingModels.TrainAsync(servingRoot);
Directory.Delete(servingRoot, recursive: true);
var fp32Package = await ModelPackage.LoadAsync(models.Fp32Folder);
var int8Package = await ModelPackage.LoadAsync(models.Int8Folder);
using var fp32Pipeline = ClassificationPipeline.CreateServing(fp32Package);
using var int8Pipeline = ClassificationPipeline.CreateServing(int8Package);
var preprocessor = new ImagePreprocessor(fp32Package.Manifest.Preprocessing, fp32Package.ReadMeanImage());
var decoder = new ImageDecoder();
var photo224 = Photos.Jpeg(224, 224, seed: 1);
var photo12MP = Photos.Jpeg(4000, 3000, seed: 2);
var input = preprocessor.DecodeAndPreprocess(decoder, photo224);

// 1. Forward latency for one image, and what int8 costs in size and agreement.
var originalOnnx = Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.ModelFileName);
using var plainOptions = new SessionOptions { IntraOpNumThreads = threads, InterOpNumThreads = 1, GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL };
using var plain = new InferenceSession(originalOnnx, plainOptions);
var plainInput = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(input, [1, 3, 224, 224]);
var plainTiming = Timing.Of(() =>
{
    using var _ = plain.Run([NamedOnnxValue.CreateFromTensor("Input247", plainInput)]);
}, warmup, runs);
var fp32Timing = Timing.Of(() => fp32Pipeline.Engine.PredictProbabilities(input, 1), warmup, runs);
var int8Timing = Timing.Of(() => int8Pipeline.Engine.PredictProbabilities(input, 1), warmup, runs);
using var torchEngine = new TorchSharpEngine(models.Result.Model, 224, ownsModel: false);
var torchTiming = Timing.Of(() => torchEngine.PredictProbabilities(input, 1), Math.Max(2, warmup / 2), Math.Max(10, runs / 3));
var vnni = CpuFeatures.HasInt8DotProduct;
var int8Goal = vnni ? 0.5 : 0.75;
rows.Add(Row("1. forward, 1 image", "plain ONNX Runtime, original ResNet18.onnx, fp32 (reference)", plainTiming, null, ""));
rows.Add(Row("1. forward, 1 image", "serving engine, fp32 graph (exported backbone + head + softmax)", fp32Timing, plainTiming, "<= 1.0x plain ORT", fp32Timing.MedianMs <= plainTiming.MedianMs));
rows.Add(Row("1. forward, 1 image", $"serving engine, int8 graph ({(vnni ? "VNNI" : "no VNNI: AVX2")} kernels)", int8Timing, plainTiming,
    $"<= {int8Goal:0.##}x plain ORT ({(vnni ? "VNNI" : "AVX2-only")} goal; the {(vnni ? "AVX2-only <= 0.75x" : "VNNI <= 0.5x")} goal needs another machine)", int8Timing.MedianMs <= int8Goal * plainTiming.MedianMs));
rows.Add(Row("1. forward, 1 image", "TorchSharp eager, same model", torchTiming, plainTiming, "(reference)"));
var check = models.Check;
rows.Add(new ResultRow("1. int8", "graph size, int8 vs fp32", $"{check.Int8Bytes / 1048576.0:F1} MB", $"{check.Fp32Bytes / 1048576.0:F1} MB",
    $"{(double)check.Int8Bytes / check.Fp32Bytes:F2}x", "<= 0.33x", Verdict(check.Int8Bytes * 3 <= check.Fp32Bytes)));
rows.Add(new ResultRow("1. int8", $"int8 check of the served model ({check.ValidationImages} emoji, 9 categories; calibrated on {check.CalibrationImages})",
    string.Create(CultureInfo.InvariantCulture, $"accuracy {check.Int8Accuracy:P1}, top-1 agreement {check.Top1Agreement:P1}, max |dp| {check.MaxProbabilityDifference:F3}"),
    string.Create(CultureInfo.InvariantCulture, $"fp32 accuracy {check.Fp32Accuracy:P1}"), string.Create(CultureInfo.InvariantCulture, $"{-check.AccuracyDropPoints:+0.0;-0.0} pt"),
    $"within {check.MaxAccuracyDropPoints} pt", Verdict(check.Accepted)));

// 5. Where session creation goes, per precision (profiled; and with graph optimisation or pre-packing switched off).
foreach (var (name, folder) in new[] { ("fp32", models.Fp32Folder), ("int8", models.Int8Folder) })
{
    var costs = SessionCosts.Measure(await File.ReadAllBytesAsync(Path.Combine(folder, ModelCheckpoint.OnnxFileName)), threads, quick ? 3 : 5);
    rows.Add(new ResultRow("5. session creation", $"{name} graph, as served (graph optimisation level all, pre-packing on), in a warm process",
        string.Create(CultureInfo.InvariantCulture, $"median {costs.DefaultMs:F0} ms (profiled: parse {costs.LoadingMs:F0} ms, initialise {costs.InitializationMs:F0} ms)"), "", "", "", ""));
    rows.Add(new ResultRow("5. session creation", $"  {name}: without graph optimisation (forward pass then {costs.NoOptimizationForwardMs:F1} ms instead of {costs.DefaultForwardMs:F1} ms)",
        $"median {costs.NoOptimizationMs:F0} ms", $"{costs.DefaultMs:F0} ms", $"{costs.NoOptimizationMs / costs.DefaultMs:F2}x", "", ""));
    rows.Add(new ResultRow("5. session creation", $"  {name}: without weight pre-packing", $"median {costs.NoPrepackingMs:F0} ms", $"{costs.DefaultMs:F0} ms", $"{costs.NoPrepackingMs / costs.DefaultMs:F2}x", "", ""));
}

// 2. End to end: bytes in, top-k out, on the default (int8) model.
var e2e224 = Timing.Of(() => int8Pipeline.Classify(photo224, top: 5), warmup, runs);
var e2e12 = Timing.Of(() => int8Pipeline.Classify(photo12MP, top: 5), Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
var decode12 = Timing.Of(() => { using var _ = decoder.Decode(photo12MP); }, Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
rows.Add(Row("2. end to end", $"224x224 JPEG ({photo224.Length / 1024} KB) -> top-5, int8 model", e2e224, plainTiming, "<= 35 ms", e2e224.MedianMs <= 35));
rows.Add(Row("2. end to end", $"4000x3000 JPEG ({photo12MP.Length / 1024} KB) -> top-5, int8 model", e2e12, plainTiming, "<= 150 ms", e2e12.MedianMs <= 150));
var decode12Scaled = Timing.Of(() => { using var _ = decoder.Decode(photo12MP, preprocessor.DecodeShorterSide); }, Math.Max(1, warmup / 3), Math.Max(5, runs / 4));
rows.Add(Row("2. end to end", "  12 MP JPEG decode at reduced scale (SkiaSharp, as served)", decode12Scaled, decode12, ""));
rows.Add(Row("2. end to end", "  12 MP JPEG full decode (ImageSharp; not served, reference)", decode12, e2e12, ""));

// 2b. What explain=true costs beside a plain classification, on the default (int8) model.
rows.AddRange(ExplainBench.Measure(int8Package, int8Pipeline, photo224, warmup, runs));

// 3. Batch throughput per precision, against plain ONNX Runtime at batch 1 (both use the same cores).
var plainRate = 1000 / plainTiming.MedianMs;
foreach (var (name, pipeline) in new[] { ("fp32", fp32Pipeline), ("int8", int8Pipeline) })
{
    foreach (var batch in new[] { 1, 8 })
    {
        var batchInput = Enumerable.Repeat(input, batch).SelectMany(x => x).ToArray();
        var timing = Timing.Of(() => pipeline.Engine.PredictProbabilities(batchInput, batch), Math.Max(1, warmup / 2), Math.Max(5, runs / 3));
        var perSecond = batch * 1000 / timing.MedianMs;
        rows.Add(new ResultRow("3. batch throughput", $"serving engine, {name}, batch {batch}", $"{perSecond:F1} images/s (median {timing.MedianMs:F1} ms per batch)",
            $"{plainRate:F1} images/s plain ORT fp32 at batch 1", $"{perSecond / plainRate:F2}x", "", ""));
    }
}

if (string.IsNullOrEmpty(storage))
{
    Console.WriteLine("ClassifierStorage is not set: cold start, serving memory and concurrency are skipped (run scripts/bench.sh, which starts Azurite).");
}
else
{
    await ServingBench.AddAsync(rows, storage, models, photo224, photo12MP, plainRate, quick, repository);
}

// 7. Size of the published Functions app.
var publishDir = Path.Combine(Path.GetTempPath(), $"bench-publish-{Guid.NewGuid():N}");
using (var publish = System.Diagnostics.Process.Start("dotnet", ["publish", Path.Combine(repository, "src", "Functions"), "-c", "Release", "-r", "linux-x64", "--self-contained", "false", "-o", publishDir, "-nologo", "-v", "q"]))
{
    await publish.WaitForExitAsync();
    if (publish.ExitCode == 0)
    {
        var files = Directory.GetFiles(publishDir, "*", SearchOption.AllDirectories);
        var megabytes = files.Sum(f => new FileInfo(f).Length) / 1048576.0;
        var torch = files.Count(f => Path.GetFileName(f).StartsWith("libtorch", StringComparison.Ordinal) || Path.GetFileName(f).StartsWith("libc10", StringComparison.Ordinal));
        rows.Add(new ResultRow("7. size", $"published Functions app (linux-x64, framework-dependent; {files.Length} files, {torch} libtorch files)", $"{megabytes:F0} MB", "", "", "<= 150 MB", Verdict(megabytes <= 150)));
        Directory.Delete(publishDir, recursive: true);
    }
}

// 6. Training: head mode on ~2,000 real images x 10 epochs vs the seed recipe vs one feature pass.
var trainingRoot = TrainingBench.PrepareData(emoji, quick ? 500 : 2000);
var training = await TrainingBench.MeasureAsync(trainingRoot, seedRecipeSample: quick ? 64 : 256);
var n = (int)training["images"];
rows.Add(new ResultRow("6. training", $"head mode, {n} images x 10 epochs, end to end (decode, features once, 10 epochs)", $"{training["headTotal"]:F1} s",
    "", "", "<= 60 s", Verdict(training["headTotal"] <= 60)));
rows.Add(new ResultRow("6. training", "  one feature-extraction pass (serving engine)", $"{training["features"]:F1} s ({n / training["features"]:F0} images/s)", $"{training["headTotal"]:F1} s", $"{training["features"] / training["headTotal"]:F2}x of head mode", "", ""));
rows.Add(new ResultRow("6. training", "  10 head epochs on cached features", $"{training["epochs"]:F2} s", "", "", "", ""));
rows.Add(new ResultRow("6. training", $"seed recipe (backbone recomputed every epoch), extrapolated from {training["sample"]:F0} images measured", $"{training["seedEstimate"]:F0} s",
    $"{training["headTotal"]:F1} s", $"{training["seedEstimate"] / training["headTotal"]:F1}x slower than head mode", "", ""));
rows.Add(new ResultRow("6. training", $"  validation accuracy of the head-mode model ({n} emoji, 9 categories)", $"{training["accuracy"]:P1}", "", "", "", ""));
rows.Add(new ResultRow("7. memory", "training process peak RSS (head mode + seed recipe sample)", $"{training["peakMb"]:F0} MB", "", "", "", ""));
Directory.Delete(emoji, recursive: true);
Directory.Delete(trainingRoot, recursive: true);

PrintAndWrite(rows, outputPath, quick, repository, loadBefore, LoadAverage());
return 0;
