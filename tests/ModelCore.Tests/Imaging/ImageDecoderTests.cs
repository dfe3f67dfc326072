using System.Diagnostics;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

public sealed partial class ImageDecoderTests
{
    private readonly ImageDecoder _decoder = new();

    public static TheoryData<string, int> Formats => new()
    {
        // format name, colour tolerance (lossy formats get more)
        { "jpeg", 12 },
        { "png", 0 },
        { "gif", 0 },
        { "bmp", 0 },
        { "webp-lossless", 0 },
        { "webp-lossy", 20 },
        { "tiff", 0 },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public void Decode_EachFormat_GivesSizeAndColour(string format, int tolerance)
    {
        var bytes = EncodeTwoColour(format, 40, 30);

        using var image = _decoder.Decode(bytes);

        Assert.Equal(40, image.Width);
        Assert.Equal(30, image.Height);
        AssertColour(TestImages.Red, image[8, 15], tolerance);
        AssertColour(TestImages.Blue, image[32, 15], tolerance);
    }

    [Theory]
    [InlineData("jpeg", "JPEG", "image/jpeg")]
    [InlineData("png", "PNG", "image/png")]
    [InlineData("gif", "GIF", "image/gif")]
    [InlineData("bmp", "BMP", "image/bmp")]
    [InlineData("webp-lossless", "Webp", "image/webp")]
    [InlineData("tiff", "TIFF", "image/tiff")]
    public void Identify_ReportsFormatAndSizeFromHeader(string format, string name, string mime)
    {
        var header = _decoder.Identify(EncodeTwoColour(format, 40, 30));

        Assert.Equal(new ImageHeader(name, mime, 40, 30, 1), header);
    }

    [Fact]
    public async Task DecodeAsync_ReadsStream()
    {
        using var stream = new MemoryStream(EncodeTwoColour("png", 12, 10));

        using var image = await _decoder.DecodeAsync(stream);

        Assert.Equal((12, 10), (image.Width, image.Height));
    }

    [Fact]
    public void Decode_AppliesExifOrientation()
    {
        using var source = TestImages.TwoColour(40, 20);
        source.Metadata.ExifProfile = new ExifProfile();
        source.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)6); // display rotated 90 degrees clockwise
        var bytes = TestImages.Encode(source, new JpegEncoder { Quality = 95 });

        var header = _decoder.Identify(bytes);
        using var image = _decoder.Decode(bytes);

        Assert.Equal((40, 20, 6), (header.Width, header.Height, header.Orientation));
        Assert.Equal((20, 40), (header.OrientedWidth, header.OrientedHeight));
        Assert.Equal((20, 40), (image.Width, image.Height));

        // The stored left (red) half is at the top once turned clockwise, the right (blue) half at the bottom.
        AssertColour(TestImages.Red, image[10, 5], 12);
        AssertColour(TestImages.Blue, image[10, 35], 12);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("jpeg")]
    public void Decode_GrayscaleGivesEqualChannels(string format)
    {
        using var source = new Image<L8>(16, 16, new L8(128));
        IImageEncoder encoder = format == "png"
            ? new PngEncoder { ColorType = PngColorType.Grayscale, BitDepth = PngBitDepth.Bit8 }
            : new JpegEncoder { ColorType = JpegColorType.Luminance, Quality = 95 };
        var bytes = TestImages.Encode(source, encoder);

        using var image = _decoder.Decode(bytes);

        AssertColour(new Rgba32(128, 128, 128), image[8, 8], 1);
    }

    [Fact]
    public void Decode_PalettePng()
    {
        using var source = TestImages.TwoColour(20, 10);
        var bytes = TestImages.Encode(source, new PngEncoder { ColorType = PngColorType.Palette });
        Assert.Equal(3, bytes[25]); // IHDR colour type 3: indexed

        using var image = _decoder.Decode(bytes);

        AssertColour(TestImages.Red, image[2, 5], 0);
        AssertColour(TestImages.Blue, image[18, 5], 0);
    }

    [Fact]
    public void Decode_16BitPng()
    {
        using var source = new Image<Rgba64>(8, 8, new Rgba64(50000, 10000, 30000, ushort.MaxValue));
        var bytes = TestImages.Encode(source, new PngEncoder { BitDepth = PngBitDepth.Bit16, ColorType = PngColorType.Rgb });
        Assert.Equal(16, bytes[24]); // IHDR bit depth

        using var image = _decoder.Decode(bytes);

        // 16-bit to 8-bit: v * 255 / 65535.
        AssertColour(new Rgba32(194, 39, 117), image[4, 4], 1);
    }

    [Theory]
    [InlineData("png")]
    [InlineData("webp-lossless")]
    [InlineData("gif")]
    public void Decode_FlattensAlphaOntoWhite(string format)
    {
        using var source = new Image<Rgba32>(8, 8, new Rgba32(0, 0, 0, 0)); // fully transparent black
        source[1, 1] = TestImages.Blue;
        if (format != "gif")
        {
            source[2, 2] = new Rgba32(255, 0, 0, 128); // half-transparent red (GIF has only on/off transparency)
        }

        var bytes = TestImages.Encode(source, Encoder(format));

        using var image = _decoder.Decode(bytes);

        Assert.Equal(new Rgb24(255, 255, 255), image[5, 5]);
        AssertColour(TestImages.Blue, image[1, 1], 0);
        if (format != "gif")
        {
            // 255*128/255 + 255*127/255, rounded: red stays 255, green and blue become 127.
            AssertColour(new Rgba32(255, 127, 127), image[2, 2], 1);
        }
    }

    [Fact]
    public void Decode_CmykJpeg()
    {
        using var image = _decoder.Decode(TestImages.CmykJpeg);

        Assert.Equal((32, 16), (image.Width, image.Height));
        AssertColour(TestImages.Red, image[4, 8], 12);
        AssertColour(TestImages.Blue, image[28, 8], 12);
    }

    [Fact]
    public void Decode_AcceptsOneByOnePixel()
    {
        // No minimum size: a 1x1 image is a valid image; the preprocessor scales it up like torchvision does.
        using var source = new Image<Rgba32>(1, 1, TestImages.Blue);

        using var image = _decoder.Decode(TestImages.Encode(source, new PngEncoder()));

        Assert.Equal((1, 1), (image.Width, image.Height));
        Assert.Equal(new Rgb24(30, 40, 200), image[0, 0]);
    }

    [Fact]
    public void Decode_AnimatedGifDecodesFirstFrameOnly()
    {
        const int Frames = 300;
        const int Side = 64;
        using var source = new Image<Rgba32>(Side, Side, TestImages.Red);
        for (int i = 1; i < Frames; i++)
        {
            source.Frames.AddFrame(new Image<Rgba32>(Side, Side, new Rgba32((byte)i, 40, 200)).Frames.RootFrame);
        }

        var bytes = TestImages.Encode(source, new GifEncoder { ColorTableMode = GifColorTableMode.Local });
        var allocator = new CountingAllocator();
        var decoder = new ImageDecoder(ImageLimits.Default, allocator);

        var watch = Stopwatch.StartNew();
        using var image = decoder.Decode(bytes);
        watch.Stop();

        Assert.Single(image.Frames);
        AssertColour(TestImages.Red, image[10, 10], 0);
        // All frames as RGBA would be 300 * 16 KB = 4.9 MB; one frame and its working buffers stay far below.
        long oneFrame = Side * Side * 4;
        Assert.True(allocator.AllocatedBytes < 40 * oneFrame, $"allocated {allocator.AllocatedBytes} bytes");
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(5), $"took {watch.Elapsed}");
    }

    [Fact]
    public void Decode_IsThreadSafe()
    {
        string[] formats = ["jpeg", "png", "gif", "bmp", "webp-lossless", "tiff"];
        var inputs = formats.Select(f => EncodeTwoColour(f, 40, 30)).ToArray();

        Parallel.For(0, 48, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
        {
            using var image = _decoder.Decode(inputs[i % inputs.Length]);
            Assert.Equal((40, 30), (image.Width, image.Height));
        });
    }

    internal static byte[] EncodeTwoColour(string format, int width, int height)
    {
        using var image = TestImages.TwoColour(width, height);
        return TestImages.Encode(image, Encoder(format));
    }

    private static IImageEncoder Encoder(string format) => format switch
    {
        "jpeg" => new JpegEncoder { Quality = 95 },
        "png" => new PngEncoder(),
        "gif" => new GifEncoder(),
        "bmp" => new BmpEncoder { BitsPerPixel = BmpBitsPerPixel.Pixel24 },
        "webp-lossless" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossless },
        "webp-lossy" => new WebpEncoder { FileFormat = WebpFileFormatType.Lossy, Quality = 90 },
        "tiff" => new TiffEncoder(),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    private static byte[] EncodeTwoColourNoise(int minimumBytes)
    {
        for (int side = 16; ; side *= 2)
        {
            using var image = Noise(side, side);
            var bytes = TestImages.Encode(image, new PngEncoder());
            if (bytes.Length >= minimumBytes)
            {
                return bytes;
            }
        }
    }

    private static Image<Rgba32> Noise(int width, int height)
    {
        var random = new Random(42);
        var image = new Image<Rgba32>(width, height);
        for (int y = 0; y < height; y++)
        {
            for (int x = 0; x < width; x++)
            {
                image[x, y] = new Rgba32((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
            }
        }

        return image;
    }

    private static ImageRejectedException AssertRejected(ImageErrorCode code, Func<object> action)
    {
        var e = Assert.Throws<ImageRejectedException>(() =>
        {
            var result = action();
            (result as IDisposable)?.Dispose();
        });
        Assert.True(e.Code == code, $"expected {code}, got {e.Code}: {e.Message}");
        return e;
    }

    private static void AssertColour(Rgba32 expected, Rgb24 actual, int tolerance)
    {
        bool close = Math.Abs(expected.R - actual.R) <= tolerance
            && Math.Abs(expected.G - actual.G) <= tolerance
            && Math.Abs(expected.B - actual.B) <= tolerance;
        Assert.True(close, $"expected ({expected.R},{expected.G},{expected.B}) +-{tolerance}, got ({actual.R},{actual.G},{actual.B})");
    }
}
