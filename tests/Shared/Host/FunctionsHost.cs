using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// The real Azure Functions host running a published app, for the tests that run the app as Azure does:
/// <c>$FUNCTIONS_HOST_DIR/run.sh</c> (a host with a <c>func start</c>-like script; CI sets the variable) or, without
/// it, Azure Functions Core Tools (<c>func</c> on PATH). The host gets exactly the settings given: inherited
/// <c>Classifier*</c>, <c>AzureWebJobs*</c>, <c>AzureFunctions*</c> and <c>WEBSITE_*</c> variables are removed, so a
/// test decides what it sees. Every line it writes (standard output and error) is kept for assertions.
/// </summary>
public sealed class FunctionsHost : IDisposable
{
    public const string DirectoryVariable = "FUNCTIONS_HOST_DIR";

    private static readonly string[] InheritedPrefixes = ["Classifier", "AzureWebJobs", "AzureFunctions", "WEBSITE_"];

    private readonly Process process;
    private readonly List<string> lines = [];
    private readonly string scratch;
    private readonly Action<string>? onLine;

    private FunctionsHost(Process process, int port, string scratch, Action<string>? onLine)
    {
        this.process = process;
        this.scratch = scratch;
        this.onLine = onLine;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        process.OutputDataReceived += (_, e) => Keep(e.Data);
        process.ErrorDataReceived += (_, e) => Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Uri BaseAddress { get; }

    public bool HasExited => process.HasExited;

    public int ExitCode => process.ExitCode;

    /// <summary>The lines the host has written so far (its log, with the worker's).</summary>
    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (lines)
            {
                return [.. lines];
            }
        }
    }

    public string Output => string.Join('\n', Lines);

    /// <summary>True when a host was asked for (<c>FUNCTIONS_HOST_DIR</c> set, or <c>CI=true</c>): then its absence fails the tests.</summary>
    public static bool Required =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 }
        || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why the host tests cannot run here, or null when they can (or must, and then fail if there is none).</summary>
    public static string? SkipReason => Required || FindOnPath("func") is not null
        ? null
        : $"No Azure Functions host: set {DirectoryVariable} to a folder with run.sh, or install Core Tools (func).";

    /// <summary>Starts the host on <paramref name="port"/> (a free one when null) with <paramref name="settings"/> as its only app settings.</summary>
    /// <param name="onLine">Called with every line the host writes, as it writes it.</param>
    public static FunctionsHost Start(string appDirectory, IReadOnlyDictionary<string, string> settings, int? port = null, Action<string>? onLine = null)
    {
        var listenPort = port ?? FreePort();
        var scratch = Directory.CreateTempSubdirectory("functions-host-test-").FullName;
        var start = CreateStartInfo(appDirectory, listenPort);
        foreach (var key in start.Environment.Keys.Where(k => InheritedPrefixes.Any(p => k.StartsWith(p, StringComparison.OrdinalIgnoreCase))).ToList())
        {
            start.Environment.Remove(key);
        }
        // The host looks for language-worker folders beside its own folder and stops at startup when there is none
        // (seen with a host built from source); the app's own worker.config.json is all a .NET isolated app needs.
        start.Environment["languageWorkers__workersDirectory"] = Directory.CreateDirectory(Path.Combine(scratch, "workers")).FullName;
        start.Environment["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated";
        foreach (var (key, value) in settings)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("The Functions host did not start.");
        return new FunctionsHost(process, listenPort, scratch, onLine);
    }

    /// <summary>Waits until the output contains <paramref name="text"/>; false when the time is up or the host exited first.</summary>
    public async Task<bool> WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (Output.Contains(text, StringComparison.Ordinal))
            {
                return true;
            }
            if (process.HasExited)
            {
                await Task.Delay(500); // let the output readers drain
                return Output.Contains(text, StringComparison.Ordinal);
            }
            await Task.Delay(250);
        }
        return false;
    }

    /// <summary>The status of GET /api/health, or null when nothing answers.</summary>
    public async Task<HttpStatusCode?> HealthAsync()
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await client.GetAsync(new Uri("api/health", UriKind.Relative));
            return response.StatusCode;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
        {
            return null;
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public void Dispose()
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit(10_000);
            }
        }
        finally
        {
            process.Dispose();
            Directory.Delete(scratch, recursive: true);
        }
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (lines)
        {
            lines.Add(line);
            onLine?.Invoke(line);
        }
    }

    private static ProcessStartInfo CreateStartInfo(string appDirectory, int port)
    {
        var portText = port.ToString(CultureInfo.InvariantCulture);
        ProcessStartInfo start;
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } hostDirectory)
        {
            var script = Path.Combine(hostDirectory, "run.sh");
            if (!File.Exists(script))
            {
                throw new FileNotFoundException($"{DirectoryVariable}={hostDirectory} has no run.sh", script);
            }
            start = new ProcessStartInfo("bash") { ArgumentList = { script, appDirectory, portText } };
        }
        else
        {
            var func = FindOnPath("func") ?? throw new InvalidOperationException(
                $"No Azure Functions host: set {DirectoryVariable} to a folder with run.sh, or install Core Tools (func). This run requires one (CI=true).");
            start = new ProcessStartInfo(func) { ArgumentList = { "start", "--port", portText }, WorkingDirectory = appDirectory };
        }
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        return start;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);
}
