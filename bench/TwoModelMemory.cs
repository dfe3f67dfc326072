using System.Diagnostics;
using System.Globalization;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Serving memory with two ResNet-18 models loaded in one instance (issue 34's "Done when"): the benchmark's served model
/// (<see cref="ServingModels"/>, int8 and fp32) is published under two names, and a fresh child process serves both
/// through the Functions app's own <see cref="ModelRegistry"/> and <see cref="ClassificationService"/> (its DI
/// registrations), alternating 12 MP photos between them. A child serving one named model in the same run is the
/// reference. Each name gets its own ONNX Runtime session, as two different models would: sessions share no weights.
/// </summary>
internal static class TwoModelMemory
{
    public const string Flag = "--two-models";
    public const string ChildFlag = "--two-models-child";
    private static readonly string[] Names = ["first", "second"];

    /// <summary><c>--two-models</c>: trains the served model, publishes it under two names per precision, runs the children, prints the rows.</summary>
    public static async Task<int> RunAloneAsync(string storage, string repository, int predictions)
    {
        Console.WriteLine($"two-model serving memory; CPU {CpuFeatures.Describe()}; {BenchEnvironment.Describe()}; load average {BenchTable.LoadAverage():F1}");
        using var models = await BenchEmoji.TrainServingModelsAsync(repository);
        var imagePath = Path.Combine(Path.GetTempPath(), $"bench-photo-{Guid.NewGuid():N}.jpg");
        await File.WriteAllBytesAsync(imagePath, Photos.Jpeg(4000, 3000, seed: 2));
        var rows = new List<string>();
        try
        {
            foreach (var (precision, folder) in new[] { ("int8", models.Int8Folder), ("fp32", models.Fp32Folder) })
            {
                var container = new BlobContainerClient(storage, $"bench-two-{precision}-{Guid.NewGuid():N}"[..40]);
                await container.CreateAsync();
                try
                {
                    foreach (var name in Names)
                    {
                        await new ModelStore(container, name).PublishAsync(folder);
                    }
                    // As before (glibc's defaults, the graph downloaded into memory), each change alone, then both (as the app runs).
                    foreach (var (returnFreed, cached) in new[] { (false, false), (true, false), (false, true), (true, true) })
                    {
                        var cache = cached ? Path.Combine(Path.GetTempPath(), $"bench-model-cache-{Guid.NewGuid():N}") : null;
                        var one = await MeasureAsync(storage, container.Name, imagePath, 1, predictions, returnFreed, cache);
                        var two = await MeasureAsync(storage, container.Name, imagePath, 2, predictions, returnFreed, cache);
                        if (cache is not null)
                        {
                            Directory.Delete(cache, recursive: true);
                        }
                        rows.Add(string.Create(CultureInfo.InvariantCulture,
                            $"| {precision} | {(returnFreed ? "on" : "off")} | {(cached ? "on: session from the cached file" : "off: session from the downloaded bytes")}{(returnFreed && cached ? " (as served)" : "")} | peak RSS {two["peakMb"]:F0} MB (one model: {one["peakMb"]:F0} MB; {two["peakMb"] / one["peakMb"]:F2}x) | " +
                            $"RSS start {two["rssStart"]:F0} / 1st model loaded {two["rssFirst"]:F0} / 2nd loaded {two["rssSecond"]:F0} / end {two["rssEnd"]:F0} MB | " +
                            $"forward median {two["forwardMs"]:F1} ms (one model: {one["forwardMs"]:F1} ms) | " +
                            $"managed heap {two["managedMb"]:F0} MB (one model: {one["managedMb"]:F0} MB) | registry's estimate {two["estimateMb"]:F0} MB, unloads {two["evictions"]:F0} | " +
                            $"{(two["peakMb"] <= 450 ? "within" : "OVER")} the 450 MB budget |"));
                    }
                }
                finally
                {
                    await container.DeleteAsync();
                }
            }
        }
        finally
        {
            File.Delete(imagePath);
        }
        Console.WriteLine("| precision | ReturnFreedModelMemory | local model cache | peak RSS, two models | RSS along the way | forward, 1 image | managed heap | registry | budget |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        rows.ForEach(Console.WriteLine);
        Console.WriteLine($"load average at the end {BenchTable.LoadAverage():F1}");
        return 0;
    }

    /// <summary>In the child: serve <paramref name="count"/> named models through the app's services, <paramref name="predictions"/> photos each, in turns.</summary>
    public static async Task<int> RunChildAsync(string storage, string container, string imagePath, int count, int predictions, bool returnFreed, string? cache)
    {
        var rssStart = ColdStart.ResidentMb();
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ClassifierStorage"] = storage,
            ["Classifier:ModelsContainer"] = container,
            ["Classifier:ReturnFreedModelMemory"] = returnFreed ? "true" : "false",
            ["Classifier:ModelCacheMegabytes"] = cache is null ? "0" : "2048",
            ["Classifier:ModelCacheDirectory"] = cache,
        }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        services.AddClassifierServices();
        await using var provider = services.BuildServiceProvider();
        var registry = provider.GetRequiredService<ModelRegistry>();
        var classifier = provider.GetRequiredService<ClassificationService>();
        var image = await File.ReadAllBytesAsync(imagePath);
        var loaded = new List<double>();
        foreach (var name in Names.Take(count))
        {
            await ClassifyAsync(name);
            loaded.Add(ColdStart.ResidentMb());
        }
        for (var i = 1; i < predictions; i++)
        {
            foreach (var name in Names.Take(count))
            {
                await ClassifyAsync(name);
            }
        }
        var peakMb = ColdStart.PeakResidentMb();
        var estimate = 0.0;
        var forward = new List<double>();
        foreach (var name in Names.Take(count))
        {
            var model = (await registry.GetAsync(name, CancellationToken.None)).Current;
            estimate += (model?.EstimatedBytes ?? 0) / 1048576.0;
            // The forward pass alone (one image, the engine as served), after the predictions above warmed it up.
            var engine = model!.Pipeline.Engine;
            var input = new float[3 * engine.InputSize * engine.InputSize];
            var random = new Random(1);
            for (var i = 0; i < input.Length; i++)
            {
                input[i] = (float)random.NextDouble() - 0.5f;
            }
            forward.Add(Timing.Of(() => engine.PredictProbabilities(input, 1), 3, 20).MedianMs);
        }
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"TWOMODELS peakMb={peakMb:F1} forwardMs={forward.Average():F2} rssStart={rssStart:F1} rssFirst={loaded[0]:F1} rssSecond={loaded[^1]:F1} rssEnd={ColdStart.ResidentMb():F1} " +
            $"managedMb={GC.GetTotalMemory(forceFullCollection: false) / 1048576.0:F1} estimateMb={estimate:F1} evictions={registry.Evictions}"));
        return 0;

        async Task ClassifyAsync(string name)
        {
            using var lease = await registry.AcquireAsync(name, CancellationToken.None);
            await classifier.ClassifyAsync(lease, image, 5, null, CancellationToken.None);
        }
    }

    private static async Task<Dictionary<string, double>> MeasureAsync(string storage, string container, string imagePath, int count, int predictions, bool returnFreed, string? cache)
    {
        var start = new ProcessStartInfo("dotnet", [typeof(TwoModelMemory).Assembly.Location, ChildFlag, storage, container, imagePath,
            count.ToString(CultureInfo.InvariantCulture), predictions.ToString(CultureInfo.InvariantCulture), returnFreed ? "on" : "off", cache ?? "-"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the two-model child");
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Console.Write(errors);
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("TWOMODELS", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"two-model child failed ({process.ExitCode}): {output}{errors}");
        Console.WriteLine($"{count} model(s), ReturnFreedModelMemory {(returnFreed ? "on" : "off")}, cache {(cache is null ? "off" : "on")}: {line}");
        return line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).Select(p => p.Split('='))
            .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }
}
