using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// A small JPEG of an image for people to look at (the review page): decoded within the limits and the decoder's
/// budget, fitted into a square. A JPEG is decoded at the smallest reduced scale (1/8, 1/4, 1/2) that keeps its
/// shorter side at least <see cref="DecodeShorterSide"/>: a 12 MP photo becomes 500x375 pixels, not 4000x3000.
/// </summary>
public static class Thumbnail
{
    public const int DefaultSize = 160;

    /// <summary>The shorter side a thumbnail of <paramref name="size"/> is decoded at, at least: twice the size, so the resize still downsamples.</summary>
    public static int DecodeShorterSide(int size = DefaultSize) => 2 * size;

    /// <summary>The JPEG bytes; throws <see cref="ImageRejectedException"/> for an image the decoder refuses.</summary>
    public static byte[] Jpeg(ImageDecoder decoder, ReadOnlyMemory<byte> image, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        return decoder.Decode(image, DecodeShorterSide(size), decoded => Encode(decoded, size));
    }

    /// <summary>Like <see cref="Jpeg"/>, waiting (cancellably) for the decoder's budget.</summary>
    public static Task<byte[]> JpegAsync(ImageDecoder decoder, ReadOnlyMemory<byte> image, CancellationToken cancellationToken, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        return decoder.DecodeAsync(image, DecodeShorterSide(size), decoded => Encode(decoded, size), cancellationToken);
    }

    private static byte[] Encode(Image<Rgb24> decoded, int size)
    {
        decoded.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(size, size), Mode = SixLabors.ImageSharp.Processing.ResizeMode.Max }));
        using var output = new MemoryStream();
        decoded.SaveAsJpeg(output, new JpegEncoder { Quality = 80 });
        return output.ToArray();
    }
}
