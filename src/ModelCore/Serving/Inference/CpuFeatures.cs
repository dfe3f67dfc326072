using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// The instruction-set extensions ONNX Runtime's kernels choose between (its int8 kernels differ most: AVX2 adds
/// uint8 x int8 products in 16-bit pairs, VNNI in 32 bits), for benchmark tables, the int8 check's record and the
/// optimised-graph cache key.
/// </summary>
public static class CpuFeatures
{
    private static readonly string[] Interesting = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "amx_int8", "asimd", "asimddp", "i8mm"];

    /// <summary>The extensions of <see cref="Interesting"/> this CPU has, by their Linux /proc/cpuinfo names.</summary>
    public static IReadOnlyList<string> Flags { get; } = Read();

    /// <summary>
    /// Whether the CPU has 8-bit dot-product instructions (x86 AVX-512 VNNI or AVX-VNNI, Arm's dot product), as its CPUID says
    /// and the operating system enables them: what ONNX Runtime chooses its integer kernels by. Not <see cref="Flags"/>
    /// (/proc/cpuinfo): under qemu-user emulating an AVX2 CPU, that is the host's (VNNI) while the kernels run without it.
    /// </summary>
    public static bool HasInt8DotProduct { get; } = DetectInt8DotProduct();

    /// <summary>
    /// Test-only: set to <c>1</c>, serving chooses its graph as on a CPU without 8-bit dot products
    /// (<see cref="ServingHasInt8DotProduct"/>), so tests on a VNNI machine reach that state. Never set it in production:
    /// it only makes a VNNI CPU serve a slower graph. Training is not affected.
    /// </summary>
    public const string AssumeNoInt8DotProductVariable = "CLASSIFIER_TEST_ASSUME_NO_VNNI";

    /// <summary>
    /// Whether serving may use int8 graphs with 8-bit weights here: <see cref="HasInt8DotProduct"/>, unless
    /// <see cref="AssumeNoInt8DotProductVariable"/> is <c>1</c> (read at each call).
    /// </summary>
    public static bool ServingHasInt8DotProduct =>
        HasInt8DotProduct && Environment.GetEnvironmentVariable(AssumeNoInt8DotProductVariable) != "1";

    /// <summary>One phrase, e.g. <c>X64 (avx2 fma; no VNNI)</c>.</summary>
    public static string Describe() =>
        $"{RuntimeInformation.ProcessArchitecture} ({(Flags.Count == 0 ? "no vector extensions found" : string.Join(' ', Flags))}{(HasInt8DotProduct ? "" : Flags.Any(f => f is "avx512_vnni" or "avx_vnni") ? "; no VNNI by CPUID" : "; no VNNI")})";

    private static bool DetectInt8DotProduct()
    {
        if (X86Base.IsSupported)
        {
            // CPUID leaf 7, sub-leaf 0: ECX bit 11 is AVX512_VNNI, usable only where the OS enables AVX-512 state (Avx512F).
            var (_, _, ecx, _) = X86Base.CpuId(7, 0);
            return (Avx512F.IsSupported && (ecx & (1 << 11)) != 0) || AvxVnni.IsSupported;
        }
        if (System.Runtime.Intrinsics.Arm.Dp.IsSupported)
        {
            return true;
        }
        return Flags.Any(f => f is "avx512_vnni" or "avx_vnni" or "asimddp");
    }

    private static string[] Read()
    {
        const string path = "/proc/cpuinfo";
        if (File.Exists(path))
        {
            var line = File.ReadLines(path).FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal) || l.StartsWith("Features", StringComparison.Ordinal));
            if (line is not null)
            {
                var present = line.Split(':', 2)[^1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
                return [.. Interesting.Where(present.Contains)];
            }
        }
        List<string> flags = [];
        if (Avx2.IsSupported)
        {
            flags.Add("avx2");
        }
        if (Avx512F.IsSupported)
        {
            flags.Add("avx512f");
        }
        if (AvxVnni.IsSupported)
        {
            flags.Add("avx_vnni");
        }
        return [.. flags];
    }
}
