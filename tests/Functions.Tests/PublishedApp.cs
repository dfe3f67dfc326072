using System.Reflection;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The app as a deployment publishes it (<c>dotnet publish src/Functions --no-build</c>, in the tests' configuration),
/// once per test run: the shape tests read it and the end-to-end tests run it under the Functions host. Published on
/// first use into a temporary folder, which is deleted when the test process exits. <c>--no-build</c>: the app was
/// built with the tests (their project reference); building it here again could race other test projects that build
/// it (the Flex package test) in the same obj folders.
/// </summary>
public static class PublishedApp
{
    private static readonly Lazy<string> Published = new(Publish, LazyThreadSafetyMode.ExecutionAndPublication);

    public static string Configuration { get; } = typeof(PublishedApp).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration;

    /// <summary>The published app's folder (read-only for the tests: the host keeps its keys and logs elsewhere).</summary>
    public static string Directory => Published.Value;

    private static string Publish()
    {
        var root = System.IO.Directory.CreateTempSubdirectory("functions-published-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) => System.IO.Directory.Delete(root, recursive: true);
        var output = Path.Combine(root, "app");
        DotnetPublish.Run(Path.Combine(TestAssets.RepositoryRoot, "src", "Functions", "Functions.csproj"), output, TimeSpan.FromMinutes(8), "-c", Configuration, "--no-build", "-v", "q");
        return output;
    }
}
