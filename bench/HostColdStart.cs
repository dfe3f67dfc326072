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
    public static async Task<List<(double HealthMs, double FirstMs, double HostStartedMs)>> MeasureAsync(string runScript, string repositoryRoot, string storage, string modelsContainer, byte[] image, int runs)
        => await MeasureAsync(runScript, repositoryRoot, storage, modelsContainer, image, [.. Enumerable.Repeat<string?>(null, runs)]);

    /// <summary>
    /// As above, one run per entry of <paramref name="cacheFolders"/>: the app's local model cache folder of that run (the
    /// same folder in successive runs: a restarted instance), or null for none (<c>Classifier:ModelCacheMegabytes</c> 0).
    /// </summary>
    public static async Task<List<(double HealthMs, double FirstMs, double HostStartedMs)>> MeasureAsync(string runScript, string repositoryRoot, string storage, string modelsContainer, byte[] image, IReadOnlyList<string?> cacheFolders)
    {
        var root = Directory.CreateTempSubdirectory("bench-host-").FullName;
        try
        {
            var app = Path.Combine(root, "app");
            using (var publish = Process.Start("dotnet", ["publish", Path.Combine(repositoryRoot, "src", "Functions"), "-c", "Release", "-o", app, "-nologo", "-v", "q"]))
            {
                await publish.WaitForExitAsync();
                if (publish.ExitCode != 0)
                {
                    throw new InvalidOperationException("dotnet publish src/Functions failed");
                }
            }
            var workers = Directory.CreateDirectory(Path.Combine(root, "workers")).FullName;
            var results = new List<(double, double, double)>();
            foreach (var cache in cacheFolders)
            {
                results.Add(await OneAsync(runScript, app, workers, storage, modelsContainer, image, cache));
            }
            return results;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static async Task<(double, double, double)> OneAsync(string runScript, string app, string workers, string storage, string modelsContainer, byte[] image, string? cache)
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
        start.Environment["Classifier__SweepSchedule"] = "0 0 0 1 1 *";
        start.Environment["Classifier__ShardQueue"] = $"bench-shards-{suffix}";
        start.Environment["AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled"] = "true";
        start.Environment["languageWorkers__workersDirectory"] = workers;
        start.Environment["FUNCTIONS_HOST_FUNCTION_KEY"] = FunctionKey;
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}/"), Timeout = TimeSpan.FromSeconds(60) };
        var clock = Stopwatch.StartNew();
        using var host = Process.Start(start) ?? throw new InvalidOperationException("the Functions host did not start");
        var hostStarted = double.NaN;
        host.OutputDataReceived += (_, line) =>
        {
            if (double.IsNaN(hostStarted) && line.Data is { } text && text.Contains("Host started", StringComparison.Ordinal))
            {
                hostStarted = clock.Elapsed.TotalMilliseconds;
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
            return (health, first, hostStarted);
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

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
