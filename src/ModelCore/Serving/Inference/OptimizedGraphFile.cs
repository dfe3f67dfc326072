using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using System.Security.Cryptography;
using Microsoft.ML.OnnxRuntime;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>What a session over a cached graph did with the optimised graph kept beside it.</summary>
public enum OptimizedGraphUse
{
    /// <summary>No optimised graph is kept for this session (a graph in memory, or the caller asked for none).</summary>
    None,

    /// <summary>The session was created from the optimised graph a previous session saved: ONNX Runtime optimised nothing.</summary>
    Reused,

    /// <summary>The session optimised the graph and saved the result for the next process on this instance.</summary>
    Saved,

    /// <summary>The session optimised the graph; saving (or using a saved) optimised graph failed, so it serves without one.</summary>
    Unavailable,
}

/// <summary>
/// The optimised graph of a verified graph file in the local model cache (issue 31, cold start): ONNX Runtime's graph
/// optimisations (fusions, layout changes) take most of a session's creation, 0.3-0.5 s for an fp32 ResNet-18 and about
/// 0.1 s for int8 on 2 cores (docs/benchmarks.md, "Cold start"). The first session over a cached graph saves its optimised
/// graph beside it; later sessions on the same instance load that with optimisations off.
/// <list type="bullet">
/// <item>The optimised graph is specific to the ONNX Runtime version and to the CPU (its blocked layouts depend on the vector
/// width), so its name carries both: another runtime or CPU never reads it.</item>
/// <item>It is checked like the graph it comes from: its SHA-256 is written beside it after it is complete and checked before it is
/// used; a file that does not match, or that ONNX Runtime refuses, is deleted and the session is created from the verified graph.</item>
/// <item>Saving it never fails a load: on a full or read-only disk the session simply serves without it.</item>
/// </list>
/// The files live in the cache entry's folder, so the cache's budget and pruning cover them.
/// </summary>
internal static class OptimizedGraphFile
{
    private const string TemporarySuffix = ".partial"; // the local model cache sweeps these when a process died mid-write

    /// <summary>The optimised graph's path for <paramref name="onnxPath"/> on this runtime and CPU.</summary>
    public static string PathFor(string onnxPath)
    {
        var folder = Path.GetDirectoryName(Path.GetFullPath(onnxPath))!;
        return Path.Combine(folder, $".{Path.GetFileNameWithoutExtension(onnxPath)}.ort-{RuntimeKey}.optimized.onnx");
    }

    /// <summary>A session over <paramref name="onnxPath"/>: from its saved optimised graph when there is a sound one, else from the graph itself, saving the optimised graph.</summary>
    public static (InferenceSession Session, OptimizedGraphUse Use) CreateSession(string onnxPath, SessionOptions options)
    {
        var optimized = PathFor(onnxPath);
        var hashFile = optimized + ".sha256";
        if (File.Exists(optimized) && Matches(optimized, hashFile))
        {
            var level = options.GraphOptimizationLevel;
            options.GraphOptimizationLevel = GraphOptimizationLevel.ORT_DISABLE_ALL;
            try
            {
                return (new InferenceSession(optimized, options), OptimizedGraphUse.Reused);
            }
            catch (OnnxRuntimeException)
            {
                // Refused (written by a runtime build that names itself the same, or damaged in a way the hash did not see): start again.
            }
            finally
            {
                options.GraphOptimizationLevel = level;
            }
        }
        Delete(optimized, hashFile);
        var temporary = $"{optimized}.{Guid.NewGuid():N}{TemporarySuffix}";
        options.OptimizedModelFilePath = temporary;
        // ONNX Runtime warns that a graph saved with its layout optimisations is hardware specific: that is why the file is keyed by CPU.
        var severity = options.LogSeverityLevel;
        options.LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR;
        InferenceSession session;
        try
        {
            session = new InferenceSession(onnxPath, options);
        }
        finally
        {
            options.OptimizedModelFilePath = string.Empty;
            options.LogSeverityLevel = severity;
        }
        try
        {
            var sha256 = Sha256(temporary);
            File.Move(temporary, optimized, overwrite: true);
            var hashTemporary = $"{hashFile}.{Guid.NewGuid():N}{TemporarySuffix}";
            File.WriteAllText(hashTemporary, sha256);
            File.Move(hashTemporary, hashFile, overwrite: true);
            return (session, OptimizedGraphUse.Saved);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Delete(temporary, optimized, hashFile);
            return (session, OptimizedGraphUse.Unavailable);
        }
    }

    /// <summary>
    /// The runtime and CPU an optimised graph belongs to: ONNX Runtime's version, the architecture, and a short hash of the
    /// CPU's feature flags (Linux's <c>/proc/cpuinfo</c>; elsewhere the x86 vector extensions .NET reports).
    /// </summary>
    internal static string RuntimeKey { get; } = string.Join('-',
        typeof(InferenceSession).Assembly.GetName().Version?.ToString(3) ?? "unknown",
        RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant(),
        Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(CpuFlags())))[..12]);

    private static string CpuFlags()
    {
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                var flags = File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal) || l.StartsWith("Features", StringComparison.Ordinal));
                if (flags is not null)
                {
                    return flags;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Fall back to what .NET reports.
        }
        return $"avx512f={Avx512F.IsSupported} avx2={Avx2.IsSupported} avx={Avx.IsSupported} avxvnni={AvxVnni.IsSupported}";
    }

    private static bool Matches(string path, string hashFile)
    {
        try
        {
            return File.Exists(hashFile) && string.Equals(File.ReadAllText(hashFile).Trim(), Sha256(path), StringComparison.OrdinalIgnoreCase);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    private static void Delete(params string[] paths)
    {
        foreach (var path in paths)
        {
            try
            {
                File.Delete(path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for the cache's pruning.
            }
        }
    }
}
