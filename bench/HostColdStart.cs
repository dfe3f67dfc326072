using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Azure.Storage.Blobs;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Cold start under the Azure Functions host: the published app started by <c>$FUNCTIONS_HOST_DIR/run.sh</c> against
/// the benchmark's Azurite and model, timed from starting the host process to <c>/api/health</c> answering 200 and to
/// the first 200 of <c>POST /api/classify</c> (the worker process started and the model loaded), and from the host's
/// own "Host started" log line (the host has started the worker and indexed its functions) to that first 200. Each run
/// is a fresh host. Skipped when <c>FUNCTIONS_HOST_DIR</c> is not set.
/// </summary>
internal static class HostColdStart
{
    private const string FunctionKey = "bench-function-key-0000000000000000000000000";

    /// <summary>The host's <c>run.sh</c>, or null when none is named.</summary>
    public static string? Find() =>
        Environment.GetEnvironmentVariable("FUNCTIONS_HOST_DIR") is { Length: > 0 } directory && File.Exists(Path.Combine(directory, "run.sh"))
            ? Path.Combine(directory, "run.sh")
            : null;

    /// <summary>Publishes the app once, then starts the host <paramref name="runs"/> times: process start to health, to the first classification, and to "Host started", per run.</summary>
    public static async Task<List<HostRun>> MeasureAsync(string runScript, string repositoryRoot, string storage, string modelsContainer, byte[] image, int runs)
        => await MeasureAsync(runScript, repositoryRoot, storage, modelsContainer, image, [.. Enumerable.Repeat<string?>(null, runs)]);

    /// <summary>
    /// As above, one run per entry of <paramref name="cacheFolders"/>: the app's local model cache folder of that run (the
    /// same folder in successive runs: a restarted instance), or null for none (<c>Classifier:ModelCacheMegabytes</c> 0).
    /// </summary>
    public static async Task<List<HostRun>> MeasureAsync(string runScript, string repositoryRoot, string storage, string modelsContainer, byte[] image, IReadOnlyList<string?> cacheFolders)
        => await MeasureAsync(runScript, repositoryRoot, storage, modelsContainer, image, [.. cacheFolders.Select(c => new Run(Publish.Plain, c))]);

    /// <summary>
    /// One host start's figures, in ms from starting the host process: to /api/health's first 200, to the first 200 of
    /// POST /api/classify, to the host's "Host started" line; and the CPU time (user + system) the worker process had used
    /// when the first classification answered: the work of its start, which unlike wall time hardly depends on the machine's load.
    /// </summary>
    public sealed record HostRun(double HealthMs, double FirstMs, double HostStartedMs, double WorkerCpuMs)
    {
        /// <summary>When the worker's log said the model was live ("Model version ... is live"), ms from starting the host; NaN when the log did not show it.</summary>
        public double ModelLiveMs { get; init; } = double.NaN;

        /// <summary>The worker's CPU time (user + system) when the host logged "Host started"; NaN when not read.</summary>
        public double WorkerCpuAtHostStartedMs { get; init; } = double.NaN;

        /// <summary>Whether the worker's log said the model was started from the local model cache and confirmed (the cached start).</summary>
        public bool CachedStartConfirmed { get; init; }
    }

    /// <summary>How the app is published for a run: as <c>dotnet publish src/Functions -c Release</c> does, or as the deployment package is (linux-x64, ReadyToRun).</summary>
    public enum Publish
    {
        Plain,
        ReadyToRun,
    }

    /// <summary>One host start: the published app it runs and its local model cache folder (null: none).</summary>
    public sealed record Run(Publish App, string? CacheFolder, bool CachedStart = true);

    /// <summary>Publishes each kind of app the runs need once, then starts a fresh host per run, in the order given.</summary>
    public static async Task<List<HostRun>> MeasureAsync(string runScript, string repositoryRoot, string storage, string modelsContainer, byte[] image, IReadOnlyList<Run> runs)
    {
        var root = Directory.CreateTempSubdirectory("bench-host-").FullName;
        try
        {
            var apps = new Dictionary<Publish, string>();
            foreach (var kind in runs.Select(r => r.App).Distinct())
            {
                var app = Path.Combine(root, $"app-{kind}");
                string[] options = kind == Publish.ReadyToRun ? ["-r", "linux-x64", "--self-contained", "false", "-p:PublishReadyToRun=true"] : [];
                using (var publish = Process.Start("dotnet", ["publish", Path.Combine(repositoryRoot, "src", "Functions"), "-c", "Release", .. options, "-o", app, "-nologo", "-v", "q"]))
                {
                    await publish.WaitForExitAsync();
                    if (publish.ExitCode != 0)
                    {
                        throw new InvalidOperationException($"dotnet publish src/Functions ({kind}) failed");
                    }
                }
                apps[kind] = app;
            }
            var workers = Directory.CreateDirectory(Path.Combine(root, "workers")).FullName;
            var results = new List<HostRun>();
            foreach (var run in runs)
            {
                results.Add(await OneAsync(runScript, apps[run.App], workers, storage, modelsContainer, image, run.CacheFolder, run.CachedStart));
            }
            return results;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<HostRun> OneAsync(string runScript, string app, string workers, string storage, string modelsContainer, byte[] image, string? cache, bool cachedStart)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var port = FreePort();
        var start = new ProcessStartInfo("bash", [runScript, app, port.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["AzureWebJobsStorage"] = storage;
        start.Environment["ClassifierStorage"] = storage;
        start.Environment["Classifier__ImagesContainer"] = $"bench-images-{suffix}";
        start.Environment["Classifier__PredictionsContainer"] = $"bench-predictions-{suffix}";
        start.Environment["Classifier__ModelsContainer"] = modelsContainer;
        if (cache is null)
        {
            start.Environment["Classifier__ModelCacheMegabytes"] = "0";
        }
        else
        {
            start.Environment["Classifier__ModelCacheDirectory"] = cache;
        }
        start.Environment["Classifier__StartFromCachedModel"] = cachedStart ? "true" : "false";
        start.Environment["Classifier__SweepSchedule"] = "0 0 0 1 1 *";
        start.Environment["Classifier__ShardQueue"] = $"bench-shards-{suffix}";
        start.Environment["AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled"] = "true";
        start.Environment["languageWorkers__workersDirectory"] = workers;
        start.Environment["FUNCTIONS_HOST_FUNCTION_KEY"] = FunctionKey;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(60) };
        var clock = Stopwatch.StartNew();
        using var host = Process.Start(start) ?? throw new InvalidOperationException("the Functions host did not start");
        var hostStarted = double.NaN;
        var modelLive = double.NaN;
        var confirmed = false;
        var cpuAtHostStarted = double.NaN;
        host.OutputDataReceived += (_, line) =>
        {
            if (double.IsNaN(hostStarted) && line.Data is { } text && text.Contains("Host started", StringComparison.Ordinal))
            {
                hostStarted = clock.Elapsed.TotalMilliseconds;
                cpuAtHostStarted = WorkerCpuMilliseconds(host.Id);
            }
            if (line.Data is { } start && start.Contains("started from the local model cache while current.json was read, and confirmed", StringComparison.Ordinal))
            {
                confirmed = true;
            }
            if (double.IsNaN(modelLive) && line.Data is { } live && live.Contains(" is live (was ", StringComparison.Ordinal))
            {
                modelLive = clock.Elapsed.TotalMilliseconds;
            }
        };
        host.ErrorDataReceived += (_, _) => { };
        host.BeginOutputReadLine();
        host.BeginErrorReadLine();
        try
        {
            var health = await UntilAsync(clock, host, async () => (await http.GetAsync(new Uri("api/health", UriKind.Relative))).StatusCode == HttpStatusCode.OK);
            var first = await UntilAsync(clock, host, async () =>
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("api/classify", UriKind.Relative)) { Content = new ByteArrayContent(image) };
                request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/jpeg");
                request.Headers.Add("x-functions-key", FunctionKey);
                return (await http.SendAsync(request)).StatusCode == HttpStatusCode.OK;
            });
            return new HostRun(health, first, hostStarted, WorkerCpuMilliseconds(host.Id)) { ModelLiveMs = modelLive, CachedStartConfirmed = confirmed, WorkerCpuAtHostStartedMs = cpuAtHostStarted };
        }
        finally
        {
            host.Kill(entireProcessTree: true);
            await host.WaitForExitAsync();
            var account = new BlobServiceClient(storage);
            await account.GetBlobContainerClient($"bench-images-{suffix}").DeleteIfExistsAsync();
            await account.GetBlobContainerClient($"bench-predictions-{suffix}").DeleteIfExistsAsync();
        }
    }

    private static async Task<double> UntilAsync(Stopwatch clock, Process host, Func<Task<bool>> ready)
    {
        while (clock.Elapsed < TimeSpan.FromMinutes(3))
        {
            if (host.HasExited)
            {
                throw new InvalidOperationException($"the Functions host exited ({host.ExitCode})");
            }
            try
            {
                if (await ready())
                {
                    return clock.Elapsed.TotalMilliseconds;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            await Task.Delay(50);
        }
        throw new TimeoutException("the Functions host did not answer within 3 minutes");
    }

    /// <summary>User + system CPU time of the app's worker process (a descendant of the host running ServerlessClassifier.Functions), NaN when not found.</summary>
    private static double WorkerCpuMilliseconds(int hostId)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(directory), out var pid) && Stat(pid) is { } stat)
            {
                var parent = int.Parse(stat[1], CultureInfo.InvariantCulture);
                (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(pid);
            }
        }
        var pending = new Stack<int>([hostId]);
        while (pending.TryPop(out var pid))
        {
            foreach (var child in children.GetValueOrDefault(pid) ?? [])
            {
                string commandLine;
                try
                {
                    commandLine = File.ReadAllText($"/proc/{child}/cmdline");
                }
                catch (IOException)
                {
                    continue;
                }
                if (commandLine.Contains("ServerlessClassifier.Functions", StringComparison.Ordinal) && Stat(child) is { } stat)
                {
                    // Fields after the command name: state(0) ppid(1) ... utime(11) stime(12), in clock ticks (100 per second on Linux).
                    return (long.Parse(stat[11], CultureInfo.InvariantCulture) + long.Parse(stat[12], CultureInfo.InvariantCulture)) * 10.0;
                }
                pending.Push(child);
            }
        }
        return double.NaN;
    }

    /// <summary>The fields of /proc/pid/stat after the command name, or null when the process is gone.</summary>
    private static string[]? Stat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            return text[(text.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
