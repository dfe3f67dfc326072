using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Runtime.CompilerServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

/// <summary>Images generated for the tests: shapes and colours encoded with ImageSharp, and hand-made hostile files.</summary>
internal static class TestImages
{
    public static readonly Rgba32 Red = new(220, 30, 30);
    public static readonly Rgba32 Blue = new(30, 40, 200);

    /// <summary>A CMYK JPEG (32x16: left half red 220,30,30, right half blue 30,40,200), made once with
    /// ImageMagick 6.9.11 (Debian 12): <c>convert -size 16x16 xc:'rgb(220,30,30)' -size 16x16 xc:'rgb(30,40,200)'
    /// +append -colorspace CMYK -quality 95 -strip cmyk.jpg</c>. ImageSharp 2.1 cannot write CMYK. It has an
    /// Adobe APP14 segment with transform 2 (YCCK), as libjpeg writes CMYK.</summary>
    public static readonly byte[] CmykJpeg = Convert.FromBase64String(
        "/9j/7gAOQWRvYmUAZAAAAAAC/9sAQwACAQEBAQECAQEBAgICAgIEAwICAgIFBAQDBAYFBgYGBQYGBgcJCAYHCQcGBggLCAkKCgoK" +
        "CgYICwwLCgwJCgoK/9sAQwECAgICAgIFAwMFCgcGBwoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoK" +
        "CgoKCgoK/8AAFAgAEAAgBAERAAIRAQMRAQQRAP/EABYAAQEBAAAAAAAAAAAAAAAAAAAHCf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/" +
        "xAAXAQEBAQEAAAAAAAAAAAAAAAAACggJ/8QAFBEBAAAAAAAAAAAAAAAAAAAAAP/aAA4EAQACEQMRBAAAPwC0NKOI7XAAXxOWoUS8" +
        "AQNRonrVAAXxOWoUS8Af/9k=");

    /// <summary>Left half <see cref="Red"/>, right half <see cref="Blue"/>.</summary>
    public static Image<Rgba32> TwoColour(int width, int height)
    {
        var image = new Image<Rgba32>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (int x = 0; x < row.Length; x++)
                {
                    row[x] = x < width / 2 ? Red : Blue;
                }
            }
        });
        return image;
    }

    public static byte[] Encode<TPixel>(Image<TPixel> image, IImageEncoder encoder)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }

    /// <summary>A PNG whose IHDR (with a correct CRC) declares the given size, followed by a tiny IDAT and IEND.</summary>
    public static byte[] PngWithHeader(int width, int height)
    {
        using var png = new MemoryStream();
        png.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8; // bit depth
        ihdr[9] = 2; // truecolour RGB; compression, filter, interlace 0
        WriteChunk(png, "IHDR", ihdr);

        using var zlib = new MemoryStream();
        using (var deflate = new ZLibStream(zlib, CompressionLevel.SmallestSize, leaveOpen: true))
        {
            deflate.Write(new byte[1024]);
        }

        WriteChunk(png, "IDAT", zlib.ToArray());
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    private static void WriteChunk(Stream stream, string type, byte[] data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        stream.Write(word);
        var typeAndData = new byte[4 + data.Length];
        System.Text.Encoding.ASCII.GetBytes(type, typeAndData);
        data.CopyTo(typeAndData, 4);
        stream.Write(typeAndData);
        BinaryPrimitives.WriteUInt32BigEndian(word, Crc32.HashToUInt32(typeAndData));
        stream.Write(word);
    }
}

/// <summary>Counts every byte ImageSharp asks its allocator for (managed arrays underneath).</summary>
internal sealed class CountingAllocator : MemoryAllocator
{
    private readonly SimpleGcMemoryAllocator _inner = new();
    private long _bytes;

    public long AllocatedBytes => Interlocked.Read(ref _bytes);

    public override IMemoryOwner<T> Allocate<T>(int length, AllocationOptions options = AllocationOptions.None)
    {
        Interlocked.Add(ref _bytes, (long)length * Unsafe.SizeOf<T>());
        return _inner.Allocate<T>(length, options);
    }

    protected override int GetBufferCapacityInBytes() => int.MaxValue;
}

/// <summary>A non-seekable body that never ends; counts what was read from it.</summary>
internal sealed class EndlessStream : Stream
{
    public long TotalRead { get; private set; }

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        buffer.AsSpan(offset, count).Fill(0xFF);
        TotalRead += count;
        return count;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
