using System.Reflection;
using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Runtime.InteropServices;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The host loads the extensions of <c>.azurefunctions</c> (the blob trigger's WebJobs extension and its Azure SDK).
/// Every assembly they reference must be in that folder, or in the framework the host runs on (.NET and ASP.NET Core),
/// or be one of the host's own assemblies (WebJobs, Microsoft.Extensions, Newtonsoft.Json: the host unifies these).
/// The Functions SDK left System.Memory.Data out (the host seen here carried it; a host in Azure may not): this fails then.
/// </summary>
public sealed class ExtensionPackageTests
{
    private static readonly string[] HostOwnedPrefixes =
        ["Microsoft.Azure.WebJobs", "Microsoft.Extensions.", "Microsoft.AspNetCore.", "Newtonsoft.Json", "Microsoft.Azure.Functions.",
            // MSAL's token-cache extension references it for Windows DPAPI only; the host ships it.
            "System.Security.Cryptography.ProtectedData"];

    private static string ExtensionsFolder => Path.Combine(TestAssets.RepositoryRoot, "src", "Functions", "bin",
        typeof(ExtensionPackageTests).Assembly.GetCustomAttribute<AssemblyConfigurationAttribute>()!.Configuration, "net10.0", ".azurefunctions");

    [Fact]
    public void EveryAssemblyTheExtensionsReference_IsInThePackageOrTheHostsFramework()
    {
        var packaged = Versions(Directory.GetFiles(ExtensionsFolder, "*.dll"));
        var frameworkRoot = Path.GetDirectoryName(Path.GetDirectoryName(RuntimeEnvironment.GetRuntimeDirectory().TrimEnd(Path.DirectorySeparatorChar)))!;
        var frameworkFolders = new[] { RuntimeEnvironment.GetRuntimeDirectory(), Path.Combine(frameworkRoot, "Microsoft.AspNetCore.App", Environment.Version.ToString()) };
        var framework = Versions(frameworkFolders.Where(Directory.Exists).SelectMany(f => Directory.GetFiles(f, "*.dll")));
        Assert.Contains("System.Runtime", framework.Keys);
        Assert.Contains("Microsoft.AspNetCore.Http", framework.Keys);

        var missing = new List<string>();
        foreach (var file in Directory.GetFiles(ExtensionsFolder, "*.dll"))
        {
            foreach (var reference in References(file))
            {
                var name = reference.Name!;
                var provided = (packaged.TryGetValue(name, out var version) || framework.TryGetValue(name, out version)) && version >= reference.Version;
                if (!provided && !HostOwnedPrefixes.Any(p => name.StartsWith(p, StringComparison.Ordinal)) && name != "netstandard" && name != "mscorlib")
                {
                    missing.Add($"{Path.GetFileName(file)} -> {name} {reference.Version} (found: {(version is null ? "none" : version.ToString())})");
                }
            }
        }
        Assert.True(missing.Count == 0, "Not in .azurefunctions nor in the framework:\n" + string.Join("\n", missing.Distinct()));
        Assert.Contains("System.Memory.Data", packaged.Keys);
    }

    private static Dictionary<string, Version?> Versions(IEnumerable<string> files)
    {
        var versions = new Dictionary<string, Version?>(StringComparer.Ordinal);
        foreach (var file in files)
        {
            try
            {
                var name = AssemblyName.GetAssemblyName(file);
                versions[name.Name!] = name.Version;
            }
            catch (BadImageFormatException)
            {
                // A native library.
            }
        }
        return versions;
    }

    private static IEnumerable<AssemblyName> References(string file)
    {
        using var stream = File.OpenRead(file);
        using var pe = new PEReader(stream);
        if (!pe.HasMetadata)
        {
            return [];
        }
        var metadata = pe.GetMetadataReader();
        return [.. metadata.AssemblyReferences.Select(h => metadata.GetAssemblyReference(h).GetAssemblyName())];
    }
}
