using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

/// <summary>The reduced-scale JPEG path (SkiaSharp) must answer like the full ImageSharp decode.</summary>
public sealed class ScaledJpegDecodeTests
{
    private readonly ImageDecoder decoder = new();

    [Fact]
    public void Decode_LargeJpeg_AtReducedScale_KeepsTheRequestedShorterSideAndColours()
    {
        var jpeg = Jpeg(1600, 1200, (x, y) => x < 800 ? new Rgb24(220, 30, 30) : new Rgb24(30, 30, 220));

        using var full = decoder.Decode(jpeg);
        using var scaled = decoder.Decode(jpeg, minShorterSide: 250);

        Assert.Equal((1600, 1200), (full.Width, full.Height));
        Assert.Equal((400, 300), (scaled.Width, scaled.Height)); // 1/4: the smallest scale keeping >= 250
        AssertClose(full[400, 600], scaled[100, 150]);
        AssertClose(full[1200, 600], scaled[300, 150]);
    }

    [Fact]
    public void Decode_SmallJpeg_IsNotReduced()
    {
        var jpeg = Jpeg(300, 200, (_, _) => new Rgb24(10, 200, 10));
        using var image = decoder.Decode(jpeg, minShorterSide: 150);
        Assert.Equal((300, 200), (image.Width, image.Height));
    }

    [Fact]
    public void Decode_ReducedScale_AppliesExifOrientation()
    {
        var jpeg = Jpeg(1600, 800, (x, _) => x < 400 ? new Rgb24(250, 250, 0) : new Rgb24(0, 0, 0), orientation: 6);

        using var full = decoder.Decode(jpeg);
        using var scaled = decoder.Decode(jpeg, minShorterSide: 100);

        Assert.Equal((800, 1600), (full.Width, full.Height));
        Assert.Equal((100, 200), (scaled.Width, scaled.Height)); // 1/8, rotated like the full decode
        // Orientation 6 turns the yellow left quarter into the top quarter.
        AssertClose(full[400, 100], scaled[50, 12]);
        AssertClose(full[400, 1500], scaled[50, 187]);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.9)]
    public void Decode_TruncatedLargeJpeg_IsRejectedLikeTheFullDecode(double keep)
    {
        var jpeg = Jpeg(1600, 1200, (x, y) => new Rgb24((byte)x, (byte)y, 90));
        var cut = jpeg[..(int)(jpeg.Length * keep)];
        var full = Assert.Throws<ImageRejectedException>(() => decoder.Decode(cut));
        var scaled = Assert.Throws<ImageRejectedException>(() => decoder.Decode(cut, minShorterSide: 100));
        Assert.Equal(full.Code, scaled.Code);
    }

    [Fact]
    public void Decode_DamagedLargeJpeg_GivesAnImageOrATypedError_OnBothPaths()
    {
        var jpeg = Jpeg(1200, 900, (x, y) => new Rgb24((byte)(x * 7), (byte)(y * 3), (byte)(x ^ y)));
        var random = new Random(17);
        for (var trial = 0; trial < 40; trial++)
        {
            var damaged = (byte[])jpeg.Clone();
            for (var flips = 0; flips < 8; flips++)
            {
                var at = random.Next(20, damaged.Length - 2); // keep SOI and EOI
                damaged[at] ^= (byte)(1 << random.Next(8));
            }
            foreach (var minShorterSide in new[] { 0, 100 })
            {
                try
                {
                    using var image = decoder.Decode(damaged, minShorterSide);
                    Assert.True(image.Width > 0 && image.Height > 0);
                }
                catch (ImageRejectedException e)
                {
                    Assert.True(Enum.IsDefined(e.Code));
                }
            }
        }
    }

    private static byte[] Jpeg(int width, int height, Func<int, int, Rgb24> pixel, int orientation = 1)
    {
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = pixel(x, y);
                }
            }
        });
        if (orientation != 1)
        {
            image.Metadata.ExifProfile = new ExifProfile();
            image.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)orientation);
        }
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 92 });
        return stream.ToArray();
    }

    private static void AssertClose(Rgb24 expected, Rgb24 actual)
    {
        Assert.InRange(Math.Abs(expected.R - actual.R), 0, 12);
        Assert.InRange(Math.Abs(expected.G - actual.G), 0, 12);
        Assert.InRange(Math.Abs(expected.B - actual.B), 0, 12);
    }
}
