using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Runtime;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Head mode as a new user runs it (the default plan: features chosen, int8 checked, OOD statistics, export and parity),
/// end to end on N emoji images, against ML.NET's image-classification recipe (<c>bench/MlNetPeer</c>: ResNet18 featurizer
/// + L-BFGS maximum entropy) fitted on the same images in the same run; both scored on the same held-out images. Each side
/// runs in a child process of its own, one after the other. Prints the ratio, the product's stage times and the CPU flags;
/// docs untouched. Usage: <c>ServerlessClassifier.Bench.dll --head-vs-mlnet [images] [held-out images]</c>
/// (build bench/MlNetPeer first).
/// </summary>
internal static class HeadVsMlNet
{
    public const string Flag = "--head-vs-mlnet";

    public const string ChildFlag = "--head-child";

    public static async Task<int> RunAsync(int images, int heldOut)
    {
        var repository = BenchEnvironment.RepositoryRoot();
        var mlnet = Path.Combine(repository, "bench", "MlNetPeer", "bin", "Release", "net10.0", "ServerlessClassifier.Bench.MlNetPeer.dll");
        if (!File.Exists(mlnet))
        {
            Console.Error.WriteLine($"Build the ML.NET peer first: dotnet build bench/MlNetPeer -c Release ({mlnet} is missing).");
            return 2;
        }
        Console.WriteLine($"Head mode vs ML.NET's Fit on {images} emoji (held out: {heldOut}); CPU {CpuFeatures.Describe()}; flags {BenchEnvironment.CpuFlags()}; {BenchEnvironment.Describe()}");
        Console.WriteLine($"load average before: {File.ReadAllText("/proc/loadavg").Trim()}");
        var emoji = await BenchEmoji.ExtractAsync(repository);
        var train = TrainingBench.PrepareData(emoji, images + heldOut);
        var test = Path.Combine(Path.GetDirectoryName(train)!, $"{Path.GetFileName(train)}-test");
        // Every (images + heldOut) / heldOut-th image, in the copy's order (round-robin over the classes), is held out.
        var files = Directory.GetDirectories(train).SelectMany(Directory.GetFiles).Order(StringComparer.Ordinal).ToList();
        var step = (double)files.Count / heldOut;
        for (var i = 0; i < heldOut; i++)
        {
            var file = files[(int)(i * step)];
            var destination = Path.Combine(test, Path.GetFileName(Path.GetDirectoryName(file)!));
            Directory.CreateDirectory(destination);
            File.Move(file, Path.Combine(destination, Path.GetFileName(file)));
        }
        try
        {
            var product = await Child("dotnet", [typeof(HeadVsMlNet).Assembly.Location, ChildFlag, train, test]);
            Console.WriteLine($"load average between: {File.ReadAllText("/proc/loadavg").Trim()}");
            var peer = await Child("dotnet", [mlnet, train, test]);
            Console.WriteLine($"load average after: {File.ReadAllText("/proc/loadavg").Trim()}");
            var ours = product.GetProperty("totalSeconds").GetDouble();
            var theirs = peer.GetProperty("trainSeconds").GetDouble();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"RESULT head mode {ours:F1} s (held-out accuracy {product.GetProperty("accuracy").GetDouble():P1}, {product.GetProperty("precision").GetString()}) vs ML.NET Fit {theirs:F1} s (held-out accuracy {peer.GetProperty("accuracy").GetDouble():P1}): {ours / theirs:F2}x"));
            Console.WriteLine($"steps: {product.GetProperty("steps")}");
            Console.WriteLine($"product: {product}");
            return 0;
        }
        finally
        {
            Directory.Delete(train, recursive: true);
            Directory.Delete(test, recursive: true);
            Directory.Delete(emoji, recursive: true);
        }
    }

    /// <summary>In the child: the default head plan on <paramref name="train"/>, then the served model on <paramref name="test"/>; one JSON line.</summary>
    public static async Task<int> RunChildAsync(string train, string test)
    {
        TorchRuntime.EnsureInitialized();
        var plan = new HeadPlan();
        var clock = Stopwatch.StartNew();
        var dataset = await ImageFolderDataset.FromDirectoryAsync(train, TrainingEngine.DatasetOptionsFor(plan));
        var folder = Path.Combine(Path.GetTempPath(), $"bench-head-model-{Guid.NewGuid():N}");
        var lines = new List<string>();
        using var result = await new TrainingEngine().TrainAsync(plan, dataset, folder,
            new TrainingRun { Progress = new SynchronousProgress(p => { if (p.Phase == TrainingPhase.Info) { lines.Add(p.Message ?? ""); } }) });
        var total = clock.Elapsed.TotalSeconds;
        foreach (var line in lines)
        {
            Console.Error.WriteLine(line);
        }
        var package = await ModelPackage.LoadAsync(folder);
        using var pipeline = ClassificationPipeline.CreateServing(package);
        var testFiles = Directory.GetDirectories(test).SelectMany(d => Directory.GetFiles(d).Select(f => (Label: Path.GetFileName(d), File: f))).ToList();
        var correct = testFiles.Count(t => pipeline.Classify(File.ReadAllBytes(t.File)).Top[0].Label == t.Label);
        Directory.Delete(folder, recursive: true);
        var quantization = result.Manifest.Quantization;
        var summary = new Dictionary<string, object?>
        {
            ["totalSeconds"] = total,
            ["images"] = dataset.Train.Count + dataset.Validation.Count,
            ["accuracy"] = (double)correct / testFiles.Count,
            ["precision"] = package.Manifest.Precision.ToString(),
            ["int8"] = quantization is null ? null : string.Create(CultureInfo.InvariantCulture,
                $"{(quantization.Accepted ? "kept" : "refused")}: fp32 {quantization.Fp32Accuracy:P1} int8 {quantization.Int8Accuracy:P1} on {quantization.ValidationImages} {quantization.Evidence} images"),
            ["features"] = result.Manifest.Training?.Probe?.Features,
            ["featurePrecision"] = result.Manifest.Training?.Probe?.FeaturePrecision,
            ["lambda"] = result.Manifest.Training?.WeightDecay,
            ["steps"] = result.Steps.ToDictionary(s => s.Step, s => Math.Round(s.Seconds, 2)),
            ["featureSeconds"] = result.FeatureSeconds,
        };
        Console.WriteLine(JsonSerializer.Serialize(summary));
        return 0;
    }

    private static async Task<JsonElement> Child(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{'));
        Console.WriteLine(await errors);
        if (process.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"{file} failed ({process.ExitCode}): {await output}");
        }
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }

    private sealed class SynchronousProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
