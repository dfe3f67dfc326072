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
    public void ReturnLargeBlocksToSystem_FreedLargeBlocksAreUnmapped()
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
        foreach (var block in large)
        {
            Marshal.FreeHGlobal(block);
        }
        // Each freed large block must have gone back to the system: its address no longer inside any mapping of the
        // process (under glibc's dynamic threshold it stays inside the heap or an arena). Judged per block rather than by
        // the resident set, which the test host's other threads move; one block's range may be mapped again by another
        // thread meanwhile, so a quarter may be.
        var mappings = Mappings();
        var stillMapped = large.Count(block => mappings.Any(m => (ulong)block >= m.Start && (ulong)block < m.End));
        foreach (var block in kept)
        {
            Marshal.FreeHGlobal(block);
        }
        Assert.True(stillMapped <= Blocks / 4, $"{stillMapped} of {Blocks} freed {BlockBytes >> 20} MB blocks are still mapped in the process (kept in the C heap, not returned to the system)");
    }

    /// <summary>The address ranges mapped in this process (/proc/self/maps).</summary>
    private static List<(ulong Start, ulong End)> Mappings() =>
        [.. File.ReadLines("/proc/self/maps").Select(line =>
        {
            var range = line[..line.IndexOf(' ', StringComparison.Ordinal)].Split('-');
            return (ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture), ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture));
        })];

    /// <summary>A block from the C heap (AllocHGlobal is malloc on Unix), every page written so that it is resident.</summary>
    private static nint Touched(int bytes)
    {
        var block = Marshal.AllocHGlobal(bytes);
        var ones = new byte[bytes];
        Array.Fill(ones, (byte)1);
        Marshal.Copy(ones, 0, block, bytes);
        return block;
    }
}
