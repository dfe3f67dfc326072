using Microsoft.Win32.SafeHandles;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// The bytes of downloaded images (blobs, a manifest's images) in a temporary file, so that training reads them
/// again without a second download and without holding the data set in memory: the file grows by each image's
/// encoded size, memory by a few bytes per image. On Linux and macOS the file is unlinked as soon as it is open,
/// so nothing is left behind even if the process is killed; on Windows it is deleted on close. It closes when the
/// data set that reads it is collected (the handle's finalizer), so it needs no disposal. Appends take a lock;
/// reads run in parallel.
/// </summary>
internal sealed class ImageSpool
{
    private readonly SafeFileHandle file;
    private readonly Lock gate = new();
    private long length;

    public ImageSpool(string directory)
    {
        var path = Path.Combine(directory, $"serverless-classifier-images-{Guid.NewGuid():N}.bin");
        file = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, OperatingSystem.IsWindows() ? FileOptions.DeleteOnClose : FileOptions.None);
        if (!OperatingSystem.IsWindows())
        {
            File.Delete(path); // the open handle keeps the data until it is closed
        }
    }

    /// <summary>Bytes written so far.</summary>
    public long Length
    {
        get
        {
            lock (gate)
            {
                return length;
            }
        }
    }

    /// <summary>Appends <paramref name="bytes"/> and returns what reads them back.</summary>
    public Func<CancellationToken, Task<byte[]>> Add(byte[] bytes)
    {
        long offset;
        lock (gate)
        {
            offset = length;
            RandomAccess.Write(file, bytes, offset);
            length += bytes.Length;
        }
        var count = bytes.Length;
        return _ => Task.FromResult(Read(offset, count));
    }

    private byte[] Read(long offset, int count)
    {
        var result = new byte[count];
        var done = 0;
        while (done < count)
        {
            var read = RandomAccess.Read(file, result.AsSpan(done), offset + done);
            if (read == 0)
            {
                throw new IOException($"The image spool ended at byte {offset + done}, before the {count} bytes written at {offset}.");
            }
            done += read;
        }
        return result;
    }
}
