using System.Runtime.InteropServices;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>Reading untrusted bytes under the byte limit, before any decoding.</summary>
public sealed partial class ImageDecoder
{
    /// <summary>
    /// Reads a whole stream, enforcing <see cref="ImageLimits.MaxBytes"/> while reading: a body that never
    /// ends is read up to MaxBytes + 1 bytes, then refused with <see cref="ImageErrorCode.TooLarge"/>.
    /// </summary>
    public ReadOnlyMemory<byte> ReadAllBytes(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = StartRead(stream);
        var chunk = new byte[ReadChunkBytes];
        while (true)
        {
            int read = stream.Read(chunk, 0, NextReadSize(buffer));
            if (read == 0)
            {
                return FinishRead(buffer);
            }

            buffer.Write(chunk, 0, read);
            ThrowIfOverByteLimit(buffer.Length, finished: false);
        }
    }

    /// <inheritdoc cref="ReadAllBytes(Stream)"/>
    public async ValueTask<ReadOnlyMemory<byte>> ReadAllBytesAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = StartRead(stream);
        var chunk = new byte[ReadChunkBytes];
        while (true)
        {
            int read = await stream.ReadAsync(chunk.AsMemory(0, NextReadSize(buffer)), cancellationToken).ConfigureAwait(false);
            if (read == 0)
            {
                return FinishRead(buffer);
            }

            buffer.Write(chunk, 0, read);
            ThrowIfOverByteLimit(buffer.Length, finished: false);
        }
    }

    private void ThrowIfEmptyOrOverByteLimit(long length)
    {
        if (length == 0)
        {
            throw new ImageRejectedException(ImageErrorCode.Empty, "image is empty (0 bytes)");
        }

        ThrowIfOverByteLimit(length, finished: true);
    }

    private void ThrowIfOverByteLimit(long length, bool finished)
    {
        if (length > Limits.MaxBytes)
        {
            string size = finished ? $"is {length} bytes" : $"is over {Limits.MaxBytes} bytes (reading stopped at {length})";
            throw new ImageRejectedException(ImageErrorCode.TooLarge, $"image {size}, over the {Limits.MaxBytes}-byte limit");
        }
    }

    private MemoryStream StartRead(Stream stream)
    {
        if (stream.CanSeek)
        {
            long remaining = stream.Length - stream.Position;
            ThrowIfOverByteLimit(remaining, finished: true);
            return new MemoryStream((int)Math.Max(0, remaining));
        }

        return new MemoryStream();
    }

    // Never ask for more than one byte past the limit, so an endless body costs MaxBytes + 1.
    private int NextReadSize(MemoryStream buffer) => (int)Math.Min(ReadChunkBytes, Limits.MaxBytes + 1 - buffer.Length);

    private ReadOnlyMemory<byte> FinishRead(MemoryStream buffer)
    {
        ThrowIfEmptyOrOverByteLimit(buffer.Length);
        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> data)
    {
        if (MemoryMarshal.TryGetArray(data, out var segment) && segment.Array is not null)
        {
            return new MemoryStream(segment.Array, segment.Offset, segment.Count, writable: false);
        }

        return new MemoryStream(data.ToArray(), writable: false);
    }
}
