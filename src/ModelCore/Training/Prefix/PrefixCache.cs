using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using ServerlessClassifier.ModelCore.Engine;

namespace ServerlessClassifier.ModelCore.Prefix;

/// <summary>
/// Fixed-length float records in a temporary file, so that a fine-tune's cached prefix outputs take disk,
/// not memory, whatever the data set's size: the process holds one batch at a time. Records are stored as
/// float16 (<paramref name="halfPrecision"/>: half the disk and I/O; a relative rounding error of at most
/// 2^-11, far below what training notices) or float32. On Linux and macOS the file is unlinked as soon
/// as it is open, so nothing is left behind even if the process is killed; on Windows it is deleted on close.
/// Reads and writes of different records may run in parallel.
/// </summary>
internal sealed class PrefixCache : IDisposable
{
    private readonly SafeFileHandle file;
    private readonly bool half;

    public PrefixCache(string directory, int records, int recordLength, bool halfPrecision)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(records, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(recordLength, 1);
        (Records, RecordLength, half) = (records, recordLength, halfPrecision);
        Bytes = (long)records * recordLength * ElementSize;
        Directory.CreateDirectory(directory);
        var free = new DriveInfo(Path.GetFullPath(directory)).AvailableFreeSpace;
        if (Bytes > free)
        {
            throw new TrainingException(
                $"The fine-tune's prefix cache needs {Bytes / 1e6:F0} MB in {directory}, which has {free / 1e6:F0} MB free; free some space, set TMPDIR to a larger disk, or use fewer cached views.");
        }
        var path = Path.Combine(directory, $"serverless-classifier-prefix-{Guid.NewGuid():N}.bin");
        file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
        if (!OperatingSystem.IsWindows())
        {
            File.Delete(path); // the open handle keeps the data until it is closed
        }
    }

    public int Records { get; }

    public int RecordLength { get; }

    /// <summary>Size of the file when every record is written.</summary>
    public long Bytes { get; }

    private int ElementSize => half ? 2 : 4;

    public void Write(int record, ReadOnlySpan<float> values)
    {
        Check(record, values.Length);
        var offset = (long)record * RecordLength * ElementSize;
        if (!half)
        {
            RandomAccess.Write(file, MemoryMarshal.AsBytes(values), offset);
            return;
        }
        var buffer = new Half[RecordLength];
        TensorPrimitives.ConvertToHalf(values, buffer);
        RandomAccess.Write(file, MemoryMarshal.AsBytes(buffer.AsSpan()), offset);
    }

    public void Read(int record, Span<float> destination)
    {
        Check(record, destination.Length);
        var offset = (long)record * RecordLength * ElementSize;
        if (!half)
        {
            ReadExactly(MemoryMarshal.AsBytes(destination), offset);
            return;
        }
        var buffer = new Half[RecordLength];
        ReadExactly(MemoryMarshal.AsBytes(buffer.AsSpan()), offset);
        TensorPrimitives.ConvertToSingle(buffer, destination);
    }

    public void Dispose() => file.Dispose();

    private void ReadExactly(Span<byte> destination, long offset)
    {
        while (destination.Length > 0)
        {
            var read = RandomAccess.Read(file, destination, offset);
            if (read == 0)
            {
                throw new InvalidOperationException($"Prefix cache record at byte {offset} was never written.");
            }
            destination = destination[read..];
            offset += read;
        }
    }

    private void Check(int record, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(record);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(record, Records);
        if (length != RecordLength)
        {
            throw new ArgumentException($"A record has {RecordLength} values, not {length}.", nameof(length));
        }
    }
}
