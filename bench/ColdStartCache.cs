using System.Globalization;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Cold start with and without the app's local model cache (issue 31), a separate run (<c>--cold-start-cache</c>): the
/// benchmark's served model, int8 and fp32, in Azurite; fresh child processes from process start to the first prediction
/// of a 12 MP JPEG, without a cache (the graph downloaded into memory), with an empty cache (a new instance) and with the
/// cache the previous child filled (a restarted process on the same instance); then the same under the Functions host
/// (<c>FUNCTIONS_HOST_DIR</c>), "Host started" to the first 200.
/// </summary>
internal static class ColdStartCache
{
    public const string Flag = "--cold-start-cache";

    public const string ReadyToRunFlag = "--host-cold-start-r2r";

    /// <summary>
    /// Cold start under the Functions host of the app as <c>dotnet publish src/Functions -c Release</c> publishes it (JIT)
    /// against the app published for linux-x64 with ReadyToRun (as the deployment package is), int8 model, filled local
    /// model cache, alternating, after one run that fills the cache (<c>--host-cold-start-r2r</c>).
    /// </summary>
    public static async Task<int> RunReadyToRunAsync(string storage, string repository, int pairs)
    {
        Console.WriteLine($"cold start under the Functions host, JIT against ReadyToRun; CPU {CpuFeatures.Describe()}; {BenchEnvironment.Describe()}; load average {BenchTable.LoadAverage():F1}");
        var runScript = HostColdStart.Find() ?? throw new InvalidOperationException("--host-cold-start-r2r needs FUNCTIONS_HOST_DIR (the Functions host's folder with run.sh).");
        using var models = await BenchEmoji.TrainServingModelsAsync(repository);
        var container = new BlobContainerClient(storage, $"bench-cold-r2r-{Guid.NewGuid():N}"[..40]);
        await container.CreateAsync();
        var cache = Path.Combine(Path.GetTempPath(), $"bench-host-cache-{Guid.NewGuid():N}");
        try
        {
            await new ModelStore(container).PublishAsync(models.Int8Folder);
            var runs = new List<HostColdStart.Run> { new(HostColdStart.Publish.Plain, cache) };
            for (var i = 0; i < pairs; i++)
            {
                runs.Add(new(HostColdStart.Publish.ReadyToRun, cache));
                runs.Add(new(HostColdStart.Publish.Plain, cache));
            }
            var results = await HostColdStart.MeasureAsync(runScript, repository, storage, container.Name, Photos.Jpeg(224, 224, seed: 1), runs);
            Console.WriteLine("| Functions host, int8 model, filled cache | app | \"Host started\" to first 200 of POST /api/classify | host process start to \"Host started\" | to first 200 | worker CPU time (user + system) at the first 200 |");
            Console.WriteLine("|---|---|---|---|---|---|");
            for (var i = 0; i < runs.Count; i++)
            {
                var r = results[i];
                var app = runs[i].App == HostColdStart.Publish.ReadyToRun ? "ReadyToRun (linux-x64)" : "JIT (plain publish)";
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| run {i + 1}{(i == 0 ? " (fills the cache; not compared)" : "")} | {app} | {r.FirstMs - r.HostStartedMs:F0} ms | {r.HostStartedMs:F0} ms | {r.FirstMs:F0} ms | {r.WorkerCpuMs:F0} ms |"));
            }
            foreach (var kind in new[] { HostColdStart.Publish.Plain, HostColdStart.Publish.ReadyToRun })
            {
                var compared = Enumerable.Range(1, runs.Count - 1).Where(i => runs[i].App == kind).Select(i => results[i]).ToList();
                var wall = compared.Select(r => r.FirstMs - r.HostStartedMs).Order().ToList();
                var cpu = compared.Select(r => r.WorkerCpuMs).Order().ToList();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{kind}: medians over {compared.Count} runs: \"Host started\" to first 200 {wall[wall.Count / 2]:F0} ms; worker CPU time {cpu[cpu.Count / 2]:F0} ms"));
            }
        }
        finally
        {
            await container.DeleteAsync();
            if (Directory.Exists(cache))
            {
                Directory.Delete(cache, recursive: true);
            }
        }
        Console.WriteLine($"load average at the end {BenchTable.LoadAverage():F1}");
        return 0;
    }

    public static async Task<int> RunAloneAsync(string storage, string repository)
    {
        Console.WriteLine($"cold start with the local model cache; CPU {CpuFeatures.Describe()}; {BenchEnvironment.Describe()}; load average {BenchTable.LoadAverage():F1}");
        using var models = await BenchEmoji.TrainServingModelsAsync(repository);
        var imagePath = Path.Combine(Path.GetTempPath(), $"bench-photo-{Guid.NewGuid():N}.jpg");
        await File.WriteAllBytesAsync(imagePath, Photos.Jpeg(4000, 3000, seed: 2));
        var rows = new List<string>();
        var containers = new List<BlobContainerClient>();
        var caches = new List<string>();
        try
        {
            foreach (var (precision, folder) in new[] { ("int8", models.Int8Folder), ("fp32", models.Fp32Folder) })
            {
                var container = new BlobContainerClient(storage, $"bench-cold-{precision}-{Guid.NewGuid():N}"[..40]);
                await container.CreateAsync();
                containers.Add(container);
                await new ModelStore(container).PublishAsync(folder);
                var cache = Path.Combine(Path.GetTempPath(), $"bench-cold-cache-{Guid.NewGuid():N}");
                caches.Add(cache);
                // Alternating, so that the machine's load falls on every kind alike. "Sequential" is the start as it was before the
                // cached start (pointer, then files, then session, then the first image); "cached start" is the app's start since.
                foreach (var (kind, folderOrNull, cachedStart) in new[]
                {
                    ("no cache", (string?)null, false),
                    ("empty cache (new instance)", cache, true),
                    ("filled cache, sequential (before)", cache, false),
                    ("filled cache, cached start (after)", cache, true),
                    ("filled cache, sequential (before)", cache, false),
                    ("filled cache, cached start (after)", cache, true),
                })
                {
                    var c = await ColdStart.MeasureAsync(storage, container.Name, imagePath, predictions: 1, folderOrNull, cachedStart);
                    var early = c["early"] > 0;
                    rows.Add(string.Create(CultureInfo.InvariantCulture,
                        $"| {precision} | {kind} | {c["total"]:F0} ms | {c["runtime"]:F0} | {c["pointer"]:F0} | {c["download"] - c["pointer"]:F0} | {c["session"]:F0} | {(early ? string.Create(CultureInfo.InvariantCulture, $"{c["keptMs"]:F0} / {c["startedSessionMs"]:F0} / {c["readyMs"]:F0}") : "")} | {c["first"]:F0} ({c["decode1"]:F0} / {c["prep1"]:F0} / {c["infer1"]:F0}) | {c["decode2"]:F0} / {c["prep2"]:F0} / {c["infer2"]:F0} | {c["cpuMs"]:F0} | {c["peakMb"]:F0} MB |"));
                }
            }
            Console.WriteLine("| precision | start | process start to first prediction | runtime load ms | current.json, the first request, ms from Main | then files (download or cache read and hash check; cached start: waiting for the confirmation) ms | then session ms | cached start, ms from Main: kept files read and checked / session created / warmed up (ready) | first prediction (12 MP JPEG) ms (decode / preprocess / inference) | the same image again: decode / preprocess / inference ms | process CPU time at the first prediction ms | peak RSS |");
            Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|---|---|");
            rows.ForEach(Console.WriteLine);
            if (HostColdStart.Find() is { } runScript)
            {
                var hostCache = Path.Combine(Path.GetTempPath(), $"bench-host-cache-{Guid.NewGuid():N}");
                caches.Add(hostCache);
                // The first run fills the cache; then the cached start off (Classifier:StartFromCachedModel=false: the start as
                // before) and on, alternating, on the same published app.
                HostColdStart.Run[] runs =
                [
                    new(HostColdStart.Publish.Plain, hostCache),
                    new(HostColdStart.Publish.Plain, hostCache, CachedStart: false),
                    new(HostColdStart.Publish.Plain, hostCache),
                    new(HostColdStart.Publish.Plain, hostCache, CachedStart: false),
                    new(HostColdStart.Publish.Plain, hostCache),
                ];
                var results = await HostColdStart.MeasureAsync(runScript, repository, storage, containers[0].Name, Photos.Jpeg(224, 224, seed: 1), runs);
                Console.WriteLine("| Functions host, int8 model | start | \"Host started\" to first 200 of POST /api/classify | host process start to \"Host started\" | to first 200 | model live (worker log) | worker CPU time at \"Host started\" / at the first 200 |");
                Console.WriteLine("|---|---|---|---|---|---|---|");
                for (var i = 0; i < runs.Length; i++)
                {
                    var r = results[i];
                    var kind = i == 0 ? "empty cache (fills it; not compared)" : runs[i].CachedStart ? $"filled cache, cached start (after; {(r.CachedStartConfirmed ? "confirmed" : "NOT confirmed in the log")})" : "filled cache, sequential (before)";
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| run {i + 1} | {kind} | {r.FirstMs - r.HostStartedMs:F0} ms | {r.HostStartedMs:F0} ms | {r.FirstMs:F0} ms | {r.ModelLiveMs:F0} ms | {r.WorkerCpuAtHostStartedMs:F0} / {r.WorkerCpuMs:F0} ms |"));
                }
            }
            else
            {
                Console.WriteLine("FUNCTIONS_HOST_DIR is not set: the cold start under the Functions host is skipped.");
            }
        }
        finally
        {
            File.Delete(imagePath);
            foreach (var container in containers)
            {
                await container.DeleteAsync();
            }
            foreach (var cache in caches.Where(Directory.Exists))
            {
                Directory.Delete(cache, recursive: true);
            }
        }
        Console.WriteLine($"load average at the end {BenchTable.LoadAverage():F1}");
        return 0;
    }
}
