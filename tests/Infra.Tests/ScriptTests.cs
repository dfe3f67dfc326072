using System.Diagnostics;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>The deployment and export scripts parse, and pass shellcheck where it is installed (Debian: apt-get install shellcheck).</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class ScriptTests
{
    public static TheoryData<string> Scripts => new() { "deploy-eventgrid.sh", "deploy-smoke.sh", "export-customvision.sh" };

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script_ParsesAndIsExecutable(string name)
    {
        var path = Path.Combine(BicepCli.RepositoryRoot, "scripts", name);

        var (exitCode, output) = Run("bash", "-n", path);

        Assert.True(exitCode == 0, output);
        Assert.NotEqual(UnixFileMode.None, File.GetUnixFileMode(path) & UnixFileMode.UserExecute);
    }

    [Theory]
    [MemberData(nameof(Scripts))]
    public void Script_PassesShellcheckWhereInstalled(string name)
    {
        var shellcheck = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, "shellcheck")).FirstOrDefault(File.Exists);
        if (shellcheck is null)
        {
            return; // bash -n above still runs; shellcheck is optional on developer machines
        }

        var (exitCode, output) = Run(shellcheck, Path.Combine(BicepCli.RepositoryRoot, "scripts", name));

        Assert.True(exitCode == 0, output);
    }

    internal static (int ExitCode, string Output) Run(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{file} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        process.WaitForExit();
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
