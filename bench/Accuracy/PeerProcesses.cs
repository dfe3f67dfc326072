using System.Diagnostics;
using System.Text.Json;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>Runs a peer as a child process and reads the one JSON line it prints last.</summary>
internal static class PeerProcesses
{
    public static async Task<JsonElement> RunAsync(string file, IEnumerable<string> arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {file}");
        var output = process.StandardOutput.ReadToEndAsync();
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = (await output).Split('\n', StringSplitOptions.RemoveEmptyEntries).LastOrDefault(l => l.StartsWith('{'));
        if (process.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"{file} failed ({process.ExitCode}): {await output}\n{await errors}");
        }
        using var document = JsonDocument.Parse(line);
        return document.RootElement.Clone();
    }
}
