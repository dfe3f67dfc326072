using System.Diagnostics;
using System.Globalization;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Cold start of the serving path, measured in a fresh child process: process start to first
/// prediction, with its parts. The child is this program run with <c>--cold-start</c>; it prints one
/// line of figures that the parent parses.
/// </summary>
internal static class ColdStart
{
    public const string Flag = "--cold-start";

    /// <summary>
    /// In the child: load the live model from the store, classify one image, report the figures and peak memory.
    /// <paramref name="cachedStart"/> (with a cache folder): start the way the app does since issue 31's cached start: the version
    /// this instance served last is made ready from the cache (session and warm-up, on the thread pool) while current.json is
    /// read, and used once the store confirms it (<see cref="CachedStart{T}"/>); otherwise one step after the other, as before.
    /// </summary>
    public static async Task<int> RunChildAsync(string connectionString, string container, string imagePath, int predictions, string? cacheFolder = null, bool cachedStart = false)
    {
        var sinceProcessStart = DateTime.Now - Process.GetCurrentProcess().StartTime;
        var clock = Stopwatch.StartNew();
        var rssStart = ResidentMb();
        var store = new ModelStore(new BlobContainerClient(connectionString, container));
        var cache = cacheFolder is null ? null : new LocalModelCache(cacheFolder, 2L << 30);
        var (keptMs, startedSessionMs, readyMs) = (0.0, 0.0, 0.0);
        var early = cache is not null && cachedStart
            ? CachedStart.Begin(cache, store, ModelPackage.ServingRoles, model =>
            {
                keptMs = clock.Elapsed.TotalMilliseconds; // the kept files read and checked
                var started = ClassificationPipeline.CreateServing(model.Package, model.OnnxPath);
                startedSessionMs = clock.Elapsed.TotalMilliseconds;
                started.WarmUp();
                readyMs = clock.Elapsed.TotalMilliseconds;
                return started;
            }, CancellationToken.None)
            : null;
        var current = await store.GetCurrentAsync() ?? throw new InvalidOperationException("no model published");
        var pointer = clock.Elapsed; // the first storage request: the Azure SDK's and HTTP stack's first use, and current.json
        ClassificationPipeline? pipeline = null;
        CachedModel? kept = null;
        var fromEarly = false;
        if (early is not null)
        {
            var confirmed = await early.ConfirmAsync(current.State.Version);
            (pipeline, kept) = (confirmed.Started, confirmed.Model);
            fromEarly = pipeline is not null;
            Console.Error.WriteLine($"cached start: {(pipeline is null ? $"discarded ({confirmed.Discarded})" : "confirmed")}");
        }
        else if (cachedStart)
        {
            Console.Error.WriteLine("cached start: none (the cache records no served version)");
        }
        var download = clock.Elapsed;
        var session = TimeSpan.Zero;
        long bytes = 0;
        if (pipeline is null)
        {
            // Without a cache folder the graph is downloaded into memory; with one, through the app's local model cache (empty: a
            // new instance; filled by an earlier child: a restarted process on the same instance) and the session reads the file.
            ModelPackage? package;
            string? onnxPath = null;
            if (cache is null)
            {
                package = await store.LoadAsync(current.State.Version, ModelPackage.ServingRoles);
            }
            else
            {
                kept = await cache.LoadAsync(store.Files(current.State.Version), store.Model, current.State.Version, ModelPackage.ServingRoles, CancellationToken.None);
                (package, onnxPath) = (kept.Package, kept.OnnxPath);
                Console.Error.WriteLine($"local model cache: {kept.Outcome}");
            }
            download = clock.Elapsed;
            clock.Restart();
            pipeline = onnxPath is null ? ClassificationPipeline.CreateServing(package) : ClassificationPipeline.CreateServing(package, onnxPath);
            session = clock.Elapsed;
            bytes = package.TotalBytes + (onnxPath is null ? 0 : new FileInfo(onnxPath).Length);
            package = null; // what serving keeps is the pipeline; the downloaded bytes are garbage from here on
        }
        else
        {
            bytes = kept!.Package.TotalBytes + new FileInfo(kept.OnnxPath).Length;
        }
        if (cache is not null && kept is not null)
        {
            cache.RememberServed(store.Model, current.State.Version, kept); // as the app does once a version is live
        }
        kept = null;
        var rssDownload = ResidentMb();
        using var served = pipeline;
        Console.Error.WriteLine($"optimised graph: {(pipeline.Engine as OnnxEngine)?.OptimizedGraph}");
        var rssSession = ResidentMb();
        var image = await File.ReadAllBytesAsync(imagePath);
        clock.Restart();
        var firstAnswer = pipeline.Classify(image);
        var first = clock.Elapsed;
        var cpuMs = Process.GetCurrentProcess().TotalProcessorTime.TotalMilliseconds;
        var rssFirst = ResidentMb();
        var secondAnswer = pipeline.Classify(image); // the same image again: what the first one's parts cost once nothing is new
        for (var i = 2; i < predictions; i++)
        {
            pipeline.Classify(image);
        }
        var peakMb = PeakResidentMb();
        var rssEnd = ResidentMb();
        var managedMb = GC.GetTotalMemory(forceFullCollection: false) / 1048576.0;
        // What a 12 MP PNG (decoded at full size: 36 MB of pixels) leaves behind once answered, after a full collection.
        var png = Photos.Png(4000, 3000);
        Collect();
        var rssBeforePng = ResidentMb();
        for (var i = 0; i < 5; i++)
        {
            pipeline.Classify(png);
        }
        Collect();
        var pngKeptMb = ResidentMb() - rssBeforePng;
        var libtorchMapped = File.ReadLines("/proc/self/maps").Any(l => l.Contains("libtorch_cpu", StringComparison.Ordinal));
        Console.Error.WriteLine($"libtorch mapped in the serving process: {libtorchMapped}");
        var (t1, t2) = (firstAnswer.Timings, secondAnswer.Timings);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"COLDSTART runtime={sinceProcessStart.TotalMilliseconds:F1} pointer={pointer.TotalMilliseconds:F1} download={download.TotalMilliseconds:F1} session={session.TotalMilliseconds:F1} first={first.TotalMilliseconds:F1} peakMb={peakMb:F1} bytes={bytes} " +
            $"early={(fromEarly ? 1 : 0)} keptMs={keptMs:F1} startedSessionMs={startedSessionMs:F1} readyMs={readyMs:F1} cpuMs={cpuMs:F0} " +
            $"decode1={t1.DecodeMs:F1} prep1={t1.PreprocessMs:F1} infer1={t1.InferenceMs:F1} decode2={t2.DecodeMs:F1} prep2={t2.PreprocessMs:F1} infer2={t2.InferenceMs:F1} " +
            $"rssStart={rssStart:F1} rssDownload={rssDownload:F1} rssSession={rssSession:F1} rssFirst={rssFirst:F1} rssEnd={rssEnd:F1} managedMb={managedMb:F1} pngKeptMb={pngKeptMb:F1}"));
        return 0;
    }

    /// <summary>In the parent: start the child and parse its figures.</summary>
    public static async Task<Dictionary<string, double>> MeasureAsync(string connectionString, string container, string imagePath, int predictions, string? cacheFolder = null, bool cachedStart = false)
    {
        var clock = Stopwatch.StartNew();
        var start = new ProcessStartInfo("dotnet", [typeof(ColdStart).Assembly.Location, Flag, connectionString, container, imagePath, predictions.ToString(CultureInfo.InvariantCulture), cacheFolder ?? "-", cachedStart ? "cached-start" : "sequential"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the cold-start process");
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        Console.Write(errors);
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("COLDSTART", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"cold-start child failed ({process.ExitCode}): {errors}");
        var figures = line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(p => p.Split('='))
            .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal);
        figures["total"] = figures["runtime"] + figures["download"] + figures["session"] + figures["first"];
        figures["wall"] = clock.Elapsed.TotalMilliseconds;
        return figures;
    }

    private static void Collect()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
    }

    /// <summary>Peak resident set size of this process (VmHWM), in MB.</summary>
    public static double PeakResidentMb() => Status("VmHWM:");

    /// <summary>Resident set size of this process now (VmRSS), in MB.</summary>
    public static double ResidentMb() => Status("VmRSS:");

    private static double Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith(field, StringComparison.Ordinal));
        return line is null ? double.NaN : double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
