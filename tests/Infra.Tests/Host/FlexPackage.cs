using System.Diagnostics;

namespace ServerlessClassifier.Infra.Tests.Host;

/// <summary>
/// The Functions app published once, as docs/deploy.md publishes it for Flex Consumption
/// (<c>dotnet publish src/Functions -c Release -p:FlexConsumption=true</c>), into a temporary folder.
/// </summary>
public sealed class FlexPackage : IDisposable
{
    private readonly Lazy<string> directory = new(Publish);

    /// <summary>The published app; published on first use, so skipped tests cost nothing.</summary>
    public string Directory => directory.Value;

    public void Dispose()
    {
        if (directory.IsValueCreated)
        {
            System.IO.Directory.Delete(Path.GetDirectoryName(directory.Value)!, recursive: true);
        }
    }

    private static string Publish()
    {
        var root = System.IO.Directory.CreateTempSubdirectory("flex-package-").FullName;
        var output = Path.Combine(root, "app");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "publish", Path.Combine(BicepCli.RepositoryRoot, "src", "Functions"), "-c", "Release", "-p:FlexConsumption=true", "-o", output, "-nologo" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // When the solution is already built (scripts/test.sh builds it first), publish only the Functions project, so
        // that this build never writes ModelCore.Serving's output while another test project runs from or publishes it.
        var serving = Path.Combine(BicepCli.RepositoryRoot, "src", "ModelCore", "Serving", "bin", "Release", "net10.0", "ServerlessClassifier.ModelCore.Serving.dll");
        if (File.Exists(serving))
        {
            start.ArgumentList.Add("--no-dependencies");
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet publish did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException("dotnet publish -p:FlexConsumption=true ran for more than 5 minutes");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"dotnet publish -p:FlexConsumption=true failed ({process.ExitCode}):\n{stdout.Result}\n{stderr.Result}");
        }
        return output;
    }
}
