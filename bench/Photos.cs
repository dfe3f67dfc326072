using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Bench;

/// <summary>Photo-like JPEGs of any size, made in the run (no files).</summary>
internal static class Photos
{
    /// <summary>A lossless photo-sized PNG (gradients and a little noise), decoded at full size when served.</summary>
    public static byte[] Png(int width, int height)
    {
        var random = new Random(3);
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)random.Next(0, 8));
                }
            }
        });
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    /// <summary>Smooth gradients, a shape and sensor-like noise, quality 90.</summary>
    public static byte[] Jpeg(int width, int height, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    var fx = (double)x / width;
                    var fy = (double)y / height;
                    var inCircle = Math.Pow(fx - 0.6, 2) + Math.Pow(fy - 0.45, 2) < 0.04;
                    var r = inCircle ? 200 : 60 + (120 * fx);
                    var g = inCircle ? 80 : 90 + (100 * fy);
                    var b = inCircle ? 60 : 140 - (80 * fx * fy);
                    var noise = random.Next(-12, 13);
                    row[x] = new Rgb24(Clamp(r + noise), Clamp(g + noise), Clamp(b + noise));
                }
            }
        });
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new JpegEncoder { Quality = 90 });
        return stream.ToArray();

        static byte Clamp(double v) => (byte)Math.Clamp(v, 0, 255);
    }
}
