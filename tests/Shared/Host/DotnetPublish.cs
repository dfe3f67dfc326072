using System.Diagnostics;

namespace ServerlessClassifier.Tests.Common;

/// <summary><c>dotnet publish</c> of a project, as the tests that need a published app run it.</summary>
public static class DotnetPublish
{
    /// <summary>
    /// Publishes <paramref name="project"/> (a project file or folder) into <paramref name="output"/> with
    /// <paramref name="options"/>; throws with the command's output when it fails or runs past <paramref name="timeout"/>.
    /// </summary>
    public static void Run(string project, string output, TimeSpan timeout, params string[] options)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "publish", project, "-o", output, "-nologo" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var option in options)
        {
            start.ArgumentList.Add(option);
        }
        var command = $"dotnet publish {project} {string.Join(' ', options)}";
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{command} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{command} ran for more than {timeout.TotalMinutes:F0} minutes");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{command} failed ({process.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        }
    }
}
