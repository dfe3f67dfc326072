using System.Globalization;
using System.Runtime.InteropServices;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Tests.Inference;

public sealed class NativeHeapTests
{
    private const int BlockBytes = 2 << 20;
    private const int Blocks = 24;

    /// <summary>
    /// The pattern of a session's creation: large transient blocks freed between smaller ones that stay (the weights it
    /// keeps). Under glibc's dynamic threshold the freed blocks stay resident in its arenas; once the threshold is fixed,
    /// each one goes back to the system when it is freed.
    /// </summary>
    [Fact]
    public void ReturnLargeBlocksToSystem_FreedLargeBlocksLeaveTheResidentSet()
    {
        if (!OperatingSystem.IsLinux() || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(NativeHeap.Variable)))
        {
            return; // glibc only, and the environment's own choice wins
        }
        Assert.True(NativeHeap.ReturnLargeBlocksToSystem());
        Assert.True(NativeHeap.ReturnLargeBlocksToSystem()); // once per process; a second call changes nothing

        // One block freed first: under the dynamic threshold this raises it above the block size.
        Marshal.FreeHGlobal(Touched(BlockBytes));
        var large = new nint[Blocks];
        var kept = new nint[Blocks];
        for (var i = 0; i < Blocks; i++)
        {
            large[i] = Touched(BlockBytes);
            kept[i] = Touched(64 << 10);
        }
        var before = ResidentMb();
        foreach (var block in large)
        {
            Marshal.FreeHGlobal(block);
        }
        var released = before - ResidentMb();
        foreach (var block in kept)
        {
            Marshal.FreeHGlobal(block);
        }
        // 48 MB were freed; allow for other threads of the test host allocating meanwhile.
        Assert.True(released >= 0.75 * Blocks * BlockBytes / 1048576.0, $"only {released:F1} MB of {Blocks * BlockBytes >> 20} MB freed left the resident set");
    }

    /// <summary>A block from the C heap (AllocHGlobal is malloc on Unix), every page written so that it is resident.</summary>
    private static nint Touched(int bytes)
    {
        var block = Marshal.AllocHGlobal(bytes);
        var ones = new byte[bytes];
        Array.Fill(ones, (byte)1);
        Marshal.Copy(ones, 0, block, bytes);
        return block;
    }

    private static double ResidentMb()
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) / 1024;
    }
}
