using System.Globalization;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Storage;
using static ServerlessClassifier.Bench.BenchTable;

namespace ServerlessClassifier.Bench;

/// <summary>
/// The figures that need the model store (Azurite): cold start and serving memory in a fresh process for each
/// precision, the cold start under the Functions host, and concurrent throughput through the app's own service.
/// </summary>
internal static class ServingBench
{
    public static async Task AddAsync(List<ResultRow> rows, string storage, ServingModels models, byte[] photo224, byte[] photo12MP, double plainRate, bool quick, string repository)
    {
        var containers = new Dictionary<string, BlobContainerClient>(StringComparer.Ordinal);
        foreach (var (precision, folder) in new[] { ("fp32", models.Fp32Folder), ("int8", models.Int8Folder) })
        {
            var container = new BlobContainerClient(storage, $"bench-models-{precision}-{Guid.NewGuid():N}"[..40]);
            await container.CreateAsync();
            await new ModelStore(container).PublishAsync(folder);
            containers[precision] = container;
        }
        var imagePath = Path.Combine(Path.GetTempPath(), $"bench-photo-{Guid.NewGuid():N}.jpg");
        await File.WriteAllBytesAsync(imagePath, photo12MP);
        try
        {
            // 5. Cold start and 7. serving memory: a fresh process loads the published model from Azurite.
            var cold = new Dictionary<string, Dictionary<string, double>>(StringComparer.Ordinal);
            foreach (var precision in new[] { "int8", "fp32" })
            {
                var c = cold[precision] = await ColdStart.MeasureAsync(storage, containers[precision].Name, imagePath, predictions: 50);
                var isDefault = precision == "int8";
                rows.Add(new ResultRow("5. cold start", $"process start to first prediction, {precision} model{(isDefault ? " (the default)" : "")} in Azurite", $"{c["total"]:F0} ms",
                    isDefault ? "" : $"{cold["int8"]["total"]:F0} ms int8", isDefault ? "" : $"{c["total"] / cold["int8"]["total"]:F1}x", "<= 1.0 s", Verdict(c["total"] <= 1000)));
                rows.Add(new ResultRow("5. cold start", "  runtime load (process start to Main)", $"{c["runtime"]:F0} ms", "", "", "", ""));
                rows.Add(new ResultRow("5. cold start", $"  model download and hash check, one streaming pass ({c["bytes"] / 1048576:F0} MB)", $"{c["download"]:F0} ms", "", "", "", ""));
                rows.Add(new ResultRow("5. cold start", "  ONNX Runtime session creation", $"{c["session"]:F0} ms", "", "", "", ""));
                rows.Add(new ResultRow("5. cold start", "  first prediction (12 MP JPEG)", $"{c["first"]:F0} ms", "", "", "", ""));
            }
            if (HostColdStart.Find() is { } runScript)
            {
                // 5. The default model under the Azure Functions host (run.sh): fresh host per run.
                var hostRuns = await HostColdStart.MeasureAsync(runScript, repository, storage, containers["int8"].Name, photo224, runs: 3);
                var first = Median(hostRuns.Select(r => r.FirstMs));
                var afterStarted = Median(hostRuns.Select(r => r.FirstMs - r.HostStartedMs));
                rows.Add(new ResultRow("5. cold start", $"Functions host (run.sh): \"Host started\" log line to first 200 of POST /api/classify, int8 model, median of {hostRuns.Count} (runs: {string.Join(", ", hostRuns.Select(r => (r.FirstMs - r.HostStartedMs).ToString("F0", CultureInfo.InvariantCulture)))} ms)",
                    $"{afterStarted:F0} ms", "", "", "<= 1.0 s", Verdict(afterStarted <= 1000)));
                rows.Add(new ResultRow("5. cold start", "  host process start to \"Host started\"", $"{Median(hostRuns.Select(r => r.HostStartedMs)):F0} ms", "", "", "", ""));
                rows.Add(new ResultRow("5. cold start", "  host process start to /api/health 200", $"{Median(hostRuns.Select(r => r.HealthMs)):F0} ms", "", "", "", ""));
                rows.Add(new ResultRow("5. cold start", "  host process start to first 200 of POST /api/classify", $"{first:F0} ms", $"{cold["int8"]["total"]:F0} ms in-process", $"{first / cold["int8"]["total"]:F1}x", "", ""));
            }
            else
            {
                Console.WriteLine("FUNCTIONS_HOST_DIR is not set: the cold start under the Functions host is skipped.");
            }
            foreach (var precision in new[] { "fp32", "int8" })
            {
                var c = cold[precision];
                rows.Add(new ResultRow("7. memory", $"serving process peak RSS, {precision} model (after 50 predictions of the 12 MP photo)", $"{c["peakMb"]:F0} MB",
                    precision == "int8" ? $"{cold["fp32"]["peakMb"]:F0} MB fp32" : "", precision == "int8" ? $"{c["peakMb"] / cold["fp32"]["peakMb"]:F2}x" : "",
                    precision == "int8" ? "<= 450 MB, and below fp32" : "<= 450 MB", Verdict(c["peakMb"] <= 450 && (precision == "fp32" || c["peakMb"] < cold["fp32"]["peakMb"]))));
                rows.Add(new ResultRow("7. memory", "  RSS at start / after download / after session / after 1st / after 50th prediction; managed heap at the end",
                    string.Create(CultureInfo.InvariantCulture, $"{c["rssStart"]:F0} / {c["rssDownload"]:F0} / {c["rssSession"]:F0} / {c["rssFirst"]:F0} / {c["rssEnd"]:F0} MB; {c["managedMb"]:F0} MB"), "", "", "", ""));
                rows.Add(new ResultRow("7. memory", "  RSS kept by five answered 12 MP PNG uploads (36 MB of pixels each), after a full collection",
                    $"{c["pngKeptMb"]:F0} MB", "", "", "< 36 MB", Verdict(c["pngKeptMb"] < 36)));
            }

            // 4. Concurrent throughput through the Functions app's service (default model), against plain ONNX Runtime at batch 1.
            foreach (var callers in new[] { 1, 4, 16 })
            {
                var perCaller = quick ? 4 : Math.Max(4, 64 / callers);
                var off = await ConcurrencyBench.ImagesPerSecondAsync(storage, containers["int8"].Name, microBatching: false, callers, perCaller, photo224);
                var on = await ConcurrencyBench.ImagesPerSecondAsync(storage, containers["int8"].Name, microBatching: true, callers, perCaller, photo224, maxWaitMilliseconds: 0);
                rows.Add(new ResultRow("4. concurrency", $"{callers} concurrent callers, 224px JPEG end to end, int8 model, micro-batching off", $"{off:F1} images/s", $"{plainRate:F1} images/s plain ORT fp32 forward at batch 1", $"{off / plainRate:F2}x", "", ""));
                rows.Add(new ResultRow("4. concurrency", $"{callers} concurrent callers, micro-batching on (the default: batches what queued during the previous pass)", $"{on:F1} images/s", $"{plainRate:F1} images/s plain ORT", $"{on / plainRate:F2}x",
                    callers == 16 ? ">= 1.0x per core (same cores)" : "", callers == 16 ? Verdict(on >= plainRate) : ""));
            }
        }
        finally
        {
            File.Delete(imagePath);
            foreach (var container in containers.Values)
            {
                await container.DeleteAsync();
            }
        }
    }

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted[sorted.Count / 2];
    }
}
