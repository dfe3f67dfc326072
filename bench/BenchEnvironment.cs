namespace ServerlessClassifier.Bench;

/// <summary>Where a benchmark runs: the machine, for the header of its table, and the repository.</summary>
internal static class BenchEnvironment
{
    /// <summary>Cores, CPU model, memory, OS and .NET version.</summary>
    public static string Describe()
    {
        var cpu = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim()
            : null;
        var memory = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / (1024.0 * 1024 * 1024);
        return $"{Environment.ProcessorCount} cores ({cpu ?? System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString()}), {memory:F0} GiB RAM, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, .NET {Environment.Version}";
    }

    /// <summary>The CPU's vector-instruction flags that matter to ONNX Runtime's and libtorch's kernels (from /proc/cpuinfo).</summary>
    public static string CpuFlags()
    {
        string[] relevant = ["sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8"];
        var flags = File.Exists("/proc/cpuinfo")
            ? File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? []
            : [];
        var present = relevant.Where(flags.Contains).ToList();
        return present.Count > 0 ? string.Join(" ", present) : "unknown";
    }

    /// <summary>The folder with ServerlessClassifier.sln above the program, else the current directory.</summary>
    public static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ServerlessClassifier.sln")))
            {
                return directory.FullName;
            }
        }
        return Directory.GetCurrentDirectory();
    }
}
