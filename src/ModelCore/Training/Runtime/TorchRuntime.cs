using System.Reflection;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace ServerlessClassifier.ModelCore.Runtime;

/// <summary>How libtorch was loaded in this process.</summary>
/// <param name="NativeDirectory">Folder the package's libtorch files were loaded from.</param>
/// <param name="LibTorchSharpPath">The LibTorchSharp file actually loaded (a patched copy when <paramref name="Patched"/>).</param>
/// <param name="Patched">Whether the GLIBCXX_3.4.32 need had to be weakened for this system's libstdc++.</param>
public sealed record TorchRuntimeInfo(string NativeDirectory, string LibTorchSharpPath, bool Patched);

/// <summary>
/// Loads TorchSharp's native libraries so that they work on Debian 12 / GCC 12 systems and never pick
/// up a system libtorch. Call <see cref="EnsureInitialized"/> before the first use of <c>torch</c>.
/// </summary>
/// <remarks>
/// Why at first load and not at build: the fix must hold however the code is run (dotnet test, dotnet
/// run, a published container, a read-only deployment) and must look at the libstdc++ of the machine
/// that runs it, not the one that built it. So on Linux this:
/// <list type="number">
/// <item>finds the package's natives beside the app (runtimes/linux-x64/native, or flattened by publish);</item>
/// <item>reads the version definitions of the system libstdc++; if GLIBCXX_3.4.32 is missing, writes a
/// copy of libLibTorchSharp.so with that one need marked weak into a cache folder keyed by the original's
/// hash (never modifying the app's or the NuGet cache's file), else uses the original untouched;</item>
/// <item>loads libc10, libtorch_cpu and libtorch from the package folder by full path, before
/// LibTorchSharp: the dynamic loader then satisfies LibTorchSharp's needs (matched by soname) with those,
/// and a libtorch in the system library path (Debian's python3-torch installs 1.13, which segfaults
/// against TorchSharp) is never consulted;</item>
/// <item>registers a DllImport resolver on TorchSharp's assembly, so its own <c>LibTorchSharp</c> and
/// <c>torch_cpu</c> loads get these handles.</item>
/// </list>
/// On Windows and macOS it does nothing; TorchSharp's own loading applies.
/// </remarks>
public static partial class TorchRuntime
{
    private const string LibTorchSharpFile = "libLibTorchSharp.so";

    // Load order matters: each of these needs the ones before it.
    private static readonly string[] LibTorchFiles = ["libc10.so", "libtorch_cpu.so", "libtorch.so"];

    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, IntPtr> Handles = new(StringComparer.Ordinal);
    private static TorchRuntimeInfo? info;

    /// <summary>
    /// Intel MKL's conditional numerical reproducibility mode, set for the process before libtorch loads
    /// unless the environment already sets it. Without it MKL picks its kernels by the alignment of the
    /// operands, so two runs on the same data can differ in the last bits (measured: the linear probe's
    /// float64 matrix products gave different weights from run to run on an AVX2 machine); AUTO keeps the
    /// fastest code path for the CPU and makes results repeat on the same machine and thread count.
    /// </summary>
    public const string MklReproducibilityVariable = "MKL_CBWR";

    /// <summary>Where a patched LibTorchSharp copy is written; overridable for read-only homes.</summary>
    public const string CacheDirectoryVariable = "SERVERLESSCLASSIFIER_NATIVE_CACHE";

    /// <summary>Loads the natives once per process; later calls return the same information.</summary>
    public static TorchRuntimeInfo? EnsureInitialized()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        lock (Gate)
        {
            if (info is not null)
            {
                return info;
            }
            var nativeDirectory = FindNativeDirectory();
            var original = Path.Combine(nativeDirectory, LibTorchSharpFile);
            var available = ElfVersionTables.ReadDefinitions(FindSystemLibStdCxx());
            var missing = LibStdCxxPatch.MissingNeeds(original, available);
            var unpatchable = missing.Where(n => n.Name != LibStdCxxPatch.Version).Select(n => n.Name).ToList();
            if (unpatchable.Count > 0)
            {
                throw new PlatformNotSupportedException(
                    $"The system {LibStdCxxPatch.LibStdCxx} lacks {string.Join(", ", unpatchable)}, which {original} needs. " +
                    "Install a newer libstdc++ (GCC 13 or later).");
            }
            var patched = missing.Count > 0;
            var libTorchSharp = patched ? WritePatchedCopy(original) : original;

            // The native environment, not .NET's copy of it: MKL (inside libtorch_cpu) reads it with getenv.
            if (SetEnvironment(MklReproducibilityVariable, "AUTO", overwrite: 0) != 0)
            {
                throw new InvalidOperationException($"setenv({MklReproducibilityVariable}) failed: error {Marshal.GetLastPInvokeError()}.");
            }
            MallocArenas.Apply(); // before libtorch's threads start; see MallocArenas for why
            foreach (var file in LibTorchFiles)
            {
                Handles[Path.GetFileNameWithoutExtension(file)] = NativeLibrary.Load(Path.Combine(nativeDirectory, file));
            }
            Handles["LibTorchSharp"] = NativeLibrary.Load(libTorchSharp);
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);
            info = new TorchRuntimeInfo(nativeDirectory, libTorchSharp, patched);
            return info;
        }
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int SetEnvironment(string name, string value, int overwrite);

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        var key = Path.GetFileNameWithoutExtension(libraryName);
        if (key.StartsWith("lib", StringComparison.Ordinal) && !Handles.ContainsKey(key))
        {
            key = key[3..];
        }
        return Handles.TryGetValue(key, out var handle) ? handle : IntPtr.Zero;
    }

    private static string FindNativeDirectory()
    {
        var roots = new[] { AppContext.BaseDirectory, Path.GetDirectoryName(typeof(torch).Assembly.Location) }
            .Where(r => !string.IsNullOrEmpty(r)).Cast<string>().Distinct();
        var rid = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? "linux-arm64" : "linux-x64";
        var candidates = roots.SelectMany(r => new[] { Path.Combine(r, "runtimes", rid, "native"), r }).ToList();
        return candidates.FirstOrDefault(d => LibTorchFiles.Append(LibTorchSharpFile).All(f => File.Exists(Path.Combine(d, f))))
            ?? throw new DllNotFoundException(
                $"libtorch natives not found in {string.Join(", ", candidates)}. The executable must reference the libtorch " +
                "package for this platform (set <UsesTorchNatives>true</UsesTorchNatives> in its project file).");
    }

    /// <summary>The libstdc++ that the dynamic loader resolves for this process.</summary>
    private static string FindSystemLibStdCxx()
    {
        NativeLibrary.Load(LibStdCxxPatch.LibStdCxx);
        var mapped = File.ReadLines("/proc/self/maps")
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(parts => parts.Length >= 6)
            .Select(parts => string.Join(' ', parts[5..]))
            .FirstOrDefault(path => Path.GetFileName(path).StartsWith("libstdc++.so", StringComparison.Ordinal));
        return mapped ?? throw new DllNotFoundException($"{LibStdCxxPatch.LibStdCxx} is loaded but not found in /proc/self/maps.");
    }

    private static string WritePatchedCopy(string original)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(original)))[..16];
        var directory = Path.Combine(CacheRoot(), hash);
        var target = Path.Combine(directory, LibTorchSharpFile);
        if (File.Exists(target) && LibStdCxxPatch.MissingNeeds(target, new HashSet<string>()).All(n => n.Name != LibStdCxxPatch.Version))
        {
            return target;
        }
        Directory.CreateDirectory(directory);
        // Write beside the target and rename: concurrent processes never load a half-written file.
        var temporary = Path.Combine(directory, $"{LibTorchSharpFile}.{Environment.ProcessId}.tmp");
        File.Copy(original, temporary, overwrite: true);
        LibStdCxxPatch.Apply(temporary);
        File.Move(temporary, target, overwrite: true);
        return target;
    }

    private static string CacheRoot()
    {
        var configured = Environment.GetEnvironmentVariable(CacheDirectoryVariable);
        if (!string.IsNullOrWhiteSpace(configured))
        {
            return configured;
        }
        var local = Environment.GetFolderPath(Environment.SpecialFolder.LocalApplicationData, Environment.SpecialFolderOption.Create);
        return string.IsNullOrEmpty(local)
            ? Path.Combine(Path.GetTempPath(), "serverless-classifier-native")
            : Path.Combine(local, "ServerlessClassifier", "native");
    }
}
