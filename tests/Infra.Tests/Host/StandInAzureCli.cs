using System.Diagnostics;

namespace ServerlessClassifier.Infra.Tests.Host;

/// <summary>
/// A stand-in for the Azure CLI on PATH, for running the deployment scripts against a local Functions host: it
/// answers the outputs of infra/main.bicep (the app's URL is the local host's), the function key, the
/// blobs_extension check, and records <c>az deployment group create</c> calls, failing the first one (as a
/// validation handshake against a cold app can). Anything else fails loudly, so a script that starts calling
/// something new is noticed.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class StandInAzureCli : IDisposable
{
    private readonly DirectoryInfo directory = Directory.CreateTempSubdirectory("stand-in-az-");

    public StandInAzureCli(Uri app, string functionKey)
    {
        var az = Path.Combine(directory.FullName, "az");
        File.WriteAllText(az, $$"""
            #!/usr/bin/env bash
            query=""; prev=""
            for arg in "$@"; do [ "$prev" = --query ] && query="$arg"; prev="$arg"; done
            case "$1 $2 $3 $query" in
              "deployment group show properties.outputs.FUNCTION_APP_NAME.value") echo func-local ;;
              "deployment group show properties.outputs.FUNCTION_APP_URL.value") echo "{{app.ToString().TrimEnd('/')}}" ;;
              "deployment group show properties.outputs.STORAGE_ACCOUNT_NAME.value") echo stlocal ;;
              "deployment group show properties.outputs.IMAGES_CONTAINER_NAME.value") echo images ;;
              "deployment group show properties.outputs.PREDICTIONS_CONTAINER_NAME.value") echo predictions ;;
              "deployment group show properties.outputs.EVENT_GRID_SYSTEM_TOPIC_NAME.value") echo evgt-local ;;
              "functionapp function keys default") echo "{{functionKey}}" ;;
              "functionapp keys list systemKeys.blobs_extension != null") echo true ;;
              "deployment group create "*)
                echo "$*" >> "{{CallLog}}"
                if [ ! -f "{{CallLog}}.failed-once" ]; then touch "{{CallLog}}.failed-once"; echo "stand-in az: handshake failed" >&2; exit 1; fi ;;
              *) echo "stand-in az: not expected here: $*" >&2; exit 1 ;;
            esac
            """.Replace("\r\n", "\n", StringComparison.Ordinal));
        File.SetUnixFileMode(az, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    /// <summary>One line per <c>az deployment group create</c> call, with its arguments.</summary>
    public string CallLog => Path.Combine(directory.FullName, "deployments.log");

    public string Deployments => File.Exists(CallLog) ? File.ReadAllText(CallLog) : "";

    /// <summary>Runs <c>bash scripts/&lt;script&gt; arguments</c> with this stand-in first on PATH.</summary>
    public async Task<(int ExitCode, string Output)> RunScriptAsync(string script, IReadOnlyDictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(Path.Combine(BicepCli.RepositoryRoot, "scripts", script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["PATH"] = directory.FullName + Path.PathSeparator + Environment.GetEnvironmentVariable("PATH");
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("bash did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>A 1x1 PNG in the stand-in's folder.</summary>
    public string WriteImage()
    {
        var image = Path.Combine(directory.FullName, "smoke.png");
        File.WriteAllBytes(image, Convert.FromBase64String(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="));
        return image;
    }

    public void Dispose() => directory.Delete(recursive: true);
}
