using System.Diagnostics;
using System.Reflection;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>The Bicep CLI from the Azure.Bicep.CommandLine.linux-x64 NuGet package (see the csproj).</summary>
internal static class BicepCli
{
    public static string RepositoryRoot { get; } = Metadata("RepositoryRoot");

    public static string MainTemplate { get; } = Path.Combine(RepositoryRoot, "infra", "main.bicep");

    public static string MainParameters { get; } = Path.Combine(RepositoryRoot, "infra", "main.bicepparam");

    /// <summary>The Event Grid subscription, deployed on its own after the code (docs/deploy.md).</summary>
    public static string EventGridTemplate { get; } = Path.Combine(RepositoryRoot, "infra", "eventgrid.bicep");

    private static readonly Lazy<string> Executable = new(FindExecutable);

    public sealed record Result(int ExitCode, string StandardOutput, string StandardError)
    {
        public string Describe() => $"exit {ExitCode}\nstdout:\n{StandardOutput}\nstderr:\n{StandardError}";
    }

    public static Result Run(params string[] arguments)
    {
        var start = new ProcessStartInfo(Executable.Value)
        {
            WorkingDirectory = RepositoryRoot,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("bicep did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"bicep {string.Join(' ', arguments)} ran for more than 2 minutes");
        }
        return new Result(process.ExitCode, stdout.Result, stderr.Result);
    }

    private static string FindExecutable()
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            throw new PlatformNotSupportedException("The infrastructure tests use the linux-x64 Bicep CLI package.");
        }
        var path = Metadata("BicepPath");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Bicep CLI not found at {path}: restore tests/Infra.Tests.", path);
        }
        // NuGet extracts files without changing their mode; make sure the binary can be run.
        var mode = File.GetUnixFileMode(path);
        const UnixFileMode execute = UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if ((mode & UnixFileMode.UserExecute) == 0)
        {
            File.SetUnixFileMode(path, mode | execute);
        }
        return path;
    }

    private static string Metadata(string key) =>
        typeof(BicepCli).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .SingleOrDefault(attribute => attribute.Key == key)?.Value
        ?? throw new InvalidOperationException($"Assembly metadata '{key}' is missing (see Infra.Tests.csproj).");
}
