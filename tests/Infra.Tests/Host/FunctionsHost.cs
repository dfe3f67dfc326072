using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace ServerlessClassifier.Infra.Tests.Host;

/// <summary>
/// The real Azure Functions host running a published app: <c>$FUNCTIONS_HOST_DIR/run.sh</c> (a host built from
/// source, with a <c>func start</c>-like script) or, without it, Azure Functions Core Tools (<c>func</c> on PATH).
/// The app gets exactly the settings given (inherited <c>Classifier*</c> and <c>AzureWebJobs*</c> variables are
/// removed), so a test decides what the host sees. Output (standard output and error) is collected for assertions.
/// </summary>
internal sealed class FunctionsHost : IDisposable
{
    public const string HostDirectoryVariable = "FUNCTIONS_HOST_DIR";

    private readonly Process process;
    private readonly StringBuilder output = new();
    private readonly string scratch;

    private FunctionsHost(Process process, int port, string scratch)
    {
        this.process = process;
        this.scratch = scratch;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        process.OutputDataReceived += (_, e) => Append(e.Data);
        process.ErrorDataReceived += (_, e) => Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public Uri BaseAddress { get; }

    public string Output
    {
        get
        {
            lock (output)
            {
                return output.ToString();
            }
        }
    }

    /// <summary>
    /// Why the host tests cannot run here, or null when they can. Never a reason when <c>FUNCTIONS_HOST_DIR</c> or
    /// <c>CI=true</c> is set: there a missing host must fail the test, not skip it.
    /// </summary>
    public static string? SkipReason()
    {
        if (Environment.GetEnvironmentVariable(HostDirectoryVariable) is { Length: > 0 }
            || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }
        return FindOnPath("func") is null
            ? $"No Azure Functions host: set {HostDirectoryVariable} to a folder with run.sh, or install Core Tools (func)."
            : null;
    }

    /// <summary>Starts the host on a free port with <paramref name="settings"/> as its only app settings.</summary>
    public static FunctionsHost Start(string appDirectory, IReadOnlyDictionary<string, string> settings)
    {
        var port = FreePort();
        var scratch = Directory.CreateTempSubdirectory("functions-host-test-").FullName;
        var start = CreateStartInfo(appDirectory, port, scratch);
        foreach (var key in start.Environment.Keys.ToList())
        {
            if (key.StartsWith("Classifier", StringComparison.OrdinalIgnoreCase) || key.StartsWith("AzureWebJobs", StringComparison.OrdinalIgnoreCase)
                || key.StartsWith("WEBSITE_", StringComparison.OrdinalIgnoreCase) || key.StartsWith("AzureFunctions", StringComparison.OrdinalIgnoreCase))
            {
                start.Environment.Remove(key);
            }
        }
        foreach (var (key, value) in settings)
        {
            start.Environment[key] = value;
        }
        var process = Process.Start(start) ?? throw new InvalidOperationException("the Functions host did not start");
        return new FunctionsHost(process, port, scratch);
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

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }
        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static ProcessStartInfo CreateStartInfo(string appDirectory, int port, string scratch)
    {
        ProcessStartInfo start;
        if (Environment.GetEnvironmentVariable(HostDirectoryVariable) is { Length: > 0 } hostDirectory)
        {
            var script = Path.Combine(hostDirectory, "run.sh");
            if (!File.Exists(script))
            {
                throw new FileNotFoundException($"{HostDirectoryVariable}={hostDirectory} has no run.sh", script);
            }
            start = new ProcessStartInfo("bash") { ArgumentList = { script, appDirectory, port.ToString(System.Globalization.CultureInfo.InvariantCulture) } };
            // That host build ships no workers/ folder beside it (it runs only the .NET isolated worker, which the
            // app's own worker.config.json describes); without a workers folder it stops at startup.
            var workers = Directory.CreateDirectory(Path.Combine(scratch, "workers")).FullName;
            start.Environment["languageWorkers__workersDirectory"] = workers;
        }
        else
        {
            var func = FindOnPath("func") ?? throw new InvalidOperationException(
                $"No Azure Functions host: set {HostDirectoryVariable} to a folder with run.sh, or install Core Tools (func). " +
                "This run requires one (CI=true).");
            start = new ProcessStartInfo(func) { ArgumentList = { "start", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture) }, WorkingDirectory = appDirectory };
        }
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.UseShellExecute = false;
        start.Environment["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated";
        return start;
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name))
            .FirstOrDefault(File.Exists);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
