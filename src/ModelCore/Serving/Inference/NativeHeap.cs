using System.Runtime.InteropServices;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// The C heap of a serving process. Creating an ONNX Runtime session parses the graph, copies its initializers and
/// rewrites them while it optimises the graph: several transient copies of the weights, of one to ten megabytes each.
/// glibc's allocator raises its mmap threshold (dynamically, up to 32 MB) once such a block is freed, so the later ones
/// come from its heap arenas and stay in the process's RSS after they are freed (measured in bench/NOTES.md, "Serving
/// memory with two ResNet-18 models loaded": an fp32 ResNet-18 session held about 2.5 times what it uses).
/// <see cref="ReturnLargeBlocksToSystem"/> fixes the threshold, so every block of at least
/// <see cref="MmapThresholdBytes"/> is mapped on its own and given back to the system when it is freed.
/// </summary>
public static partial class NativeHeap
{
    /// <summary>glibc's environment variable for the same setting: when the environment sets it, the user's choice wins.</summary>
    public const string Variable = "MALLOC_MMAP_THRESHOLD_";

    /// <summary>Blocks of this size or more are mapped on their own (glibc's default starts at 128 KB and grows).</summary>
    public const int MmapThresholdBytes = 1 << 20;

    // glibc's mallopt parameter number (malloc.h): M_MMAP_THRESHOLD.
    private const int MmapThresholdParameter = -3;

    private static readonly Lazy<bool> Applied = new(Apply);

    /// <summary>
    /// Fixes glibc's mmap threshold at <see cref="MmapThresholdBytes"/> for the whole process, once; call it before the
    /// first session is created. Returns true when the setting took; false where the environment sets
    /// <see cref="Variable"/> or the C library is not glibc (Windows, macOS, musl), where nothing is changed. Per-request allocations above the threshold (an image's decoded pixels)
    /// then cost one mapping each, which the forward latency measured beside the memory figures includes.
    /// </summary>
    public static bool ReturnLargeBlocksToSystem() => Applied.Value;

    private static bool Apply()
    {
        if (!OperatingSystem.IsLinux() || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable)))
        {
            return false;
        }
        try
        {
            return mallopt(MmapThresholdParameter, MmapThresholdBytes) == 1;
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            return false; // not glibc (musl has no mallopt)
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int mallopt(int parameter, int value);
}
