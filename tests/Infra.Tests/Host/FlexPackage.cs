using ServerlessClassifier.Tests.Common;

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
        string[] options = ["-c", "Release", "-p:FlexConsumption=true"];
        // When the solution is already built (scripts/test.sh builds it first), publish only the Functions project, so
        // that this build never writes ModelCore.Serving's output while another test project runs from or publishes it.
        var serving = Path.Combine(BicepCli.RepositoryRoot, "src", "ModelCore", "Serving", "bin", "Release", "net10.0", "ServerlessClassifier.ModelCore.Serving.dll");
        DotnetPublish.Run(Path.Combine(BicepCli.RepositoryRoot, "src", "Functions"), output, TimeSpan.FromMinutes(5), File.Exists(serving) ? [.. options, "--no-dependencies"] : options);
        return output;
    }
}
