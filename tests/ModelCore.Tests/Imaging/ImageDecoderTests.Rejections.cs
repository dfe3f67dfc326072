using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

/// <summary>The decoder on hostile input: empty, random, renamed, truncated, oversized, endless.</summary>
public sealed partial class ImageDecoderTests
{
    [Fact]
    public void Decode_RejectsEmptyInput()
    {
        AssertRejected(ImageErrorCode.Empty, () => _decoder.Decode(Array.Empty<byte>()));
        AssertRejected(ImageErrorCode.Empty, () => _decoder.Decode(new MemoryStream()));
        AssertRejected(ImageErrorCode.Empty, () => _decoder.Identify(ReadOnlyMemory<byte>.Empty));
    }

    [Fact]
    public void Decode_RejectsRandomBytes()
    {
        var bytes = new byte[4096];
        new Random(1234).NextBytes(bytes);

        var e = AssertRejected(ImageErrorCode.UnsupportedFormat, () => _decoder.Decode(bytes));
        Assert.Contains("not a supported image", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_RejectsTextRenamedJpg()
    {
        var bytes = "Hello, this is a text file called photo.jpg\n"u8.ToArray();

        AssertRejected(ImageErrorCode.UnsupportedFormat, () => _decoder.Decode(bytes));
        Assert.False(_decoder.TryIdentify(bytes, out _, out var error));
        Assert.Equal(ImageErrorCode.UnsupportedFormat, error.Code);
    }

    [Theory]
    [InlineData(0.6)] // inside the compressed scan
    [InlineData(0.1)] // inside the headers
    public void Decode_RejectsTruncatedJpeg(double keep)
    {
        using var source = Noise(64, 64);
        var full = TestImages.Encode(source, new JpegEncoder { Quality = 90 });
        var truncated = full[..(int)(full.Length * keep)];

        var e = AssertRejected(ImageErrorCode.Corrupt, () => _decoder.Decode(truncated));
        Assert.Contains("JPEG", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(0.6)]
    [InlineData(0.03)] // signature and part of IHDR
    public void Decode_RejectsTruncatedPng(double keep)
    {
        using var source = Noise(64, 64);
        var full = TestImages.Encode(source, new PngEncoder());
        var truncated = full[..(int)(full.Length * keep)];

        var e = AssertRejected(ImageErrorCode.Corrupt, () => _decoder.Decode(truncated));
        Assert.Contains("PNG", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_RejectsPngCutBetweenDataChunks()
    {
        using var source = Noise(160, 160); // incompressible: about 77 KB of IDAT data
        var full = TestImages.Encode(source, new PngEncoder());
        var idatEnds = new List<int>();
        for (int pos = 8; pos + 12 <= full.Length;)
        {
            int end = pos + 12 + System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(full.AsSpan(pos));
            if (full.AsSpan(pos + 4, 4).SequenceEqual("IDAT"u8))
            {
                idatEnds.Add(end);
            }

            pos = end;
        }

        Assert.True(idatEnds.Count >= 2, $"the encoder wrote {idatEnds.Count} IDAT chunk(s)");
        var cut = full[..idatEnds[0]]; // whole chunks only: the file just stops after the first data chunk

        var e = AssertRejected(ImageErrorCode.Corrupt, () => _decoder.Decode(cut));
        Assert.Contains("PNG", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TryIdentify_TellsNotAnImageFromCorrupt()
    {
        var png = TestImages.Encode(TestImages.TwoColour(8, 8), new PngEncoder());

        Assert.True(_decoder.TryIdentify(png, out var header, out _));
        Assert.Equal("PNG", header.Format);
        Assert.False(_decoder.TryIdentify(png.AsMemory(0, 20), out _, out var corrupt));
        Assert.Equal(ImageErrorCode.Corrupt, corrupt.Code);
        Assert.False(_decoder.TryIdentify("<html></html>"u8.ToArray(), out _, out var notImage));
        Assert.Equal(ImageErrorCode.UnsupportedFormat, notImage.Code);
    }

    [Fact]
    public void Decode_RefusesHugeHeaderWithoutAllocating()
    {
        var bytes = TestImages.PngWithHeader(30000, 30000);
        var allocator = new CountingAllocator();
        var decoder = new ImageDecoder(ImageLimits.Default, allocator);

        Assert.Equal((30000, 30000), (decoder.Identify(bytes).Width, decoder.Identify(bytes).Height));
        var e = AssertRejected(ImageErrorCode.TooManyPixels, () => decoder.Decode(bytes));

        Assert.Equal("image is 30000x30000 = 900 MP, over the 40 MP limit", e.Message);
        Assert.True(allocator.AllocatedBytes < 1 << 20, $"allocated {allocator.AllocatedBytes} bytes");
    }

    [Fact]
    public void Decode_RejectsInputOverByteLimit()
    {
        var decoder = new ImageDecoder(new ImageLimits { MaxBytes = 1000 });
        var bytes = EncodeTwoColourNoise(1001);
        Assert.True(bytes.Length > 1000);

        AssertRejected(ImageErrorCode.TooLarge, () => decoder.Decode(bytes));
        AssertRejected(ImageErrorCode.TooLarge, () => decoder.Decode(new MemoryStream(bytes)));
        AssertRejected(ImageErrorCode.TooLarge, () => decoder.Identify(bytes));
    }

    [Fact]
    public async Task Decode_StopsReadingEndlessStreamAtLimitPlusOne()
    {
        var decoder = new ImageDecoder(new ImageLimits { MaxBytes = 100_000 });
        var stream = new EndlessStream();

        AssertRejected(ImageErrorCode.TooLarge, () => decoder.Decode(stream));
        Assert.Equal(100_001, stream.TotalRead);

        var asyncStream = new EndlessStream();
        var e = await Assert.ThrowsAsync<ImageRejectedException>(() => decoder.DecodeAsync(asyncStream));
        Assert.Equal(ImageErrorCode.TooLarge, e.Code);
        Assert.Equal(100_001, asyncStream.TotalRead);
    }
}
