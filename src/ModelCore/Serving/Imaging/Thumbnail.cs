using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>A small JPEG of an image for people to look at (the review page): decoded within the limits, fitted into a square.</summary>
public static class Thumbnail
{
    public const int DefaultSize = 160;

    /// <summary>The JPEG bytes; throws <see cref="ImageRejectedException"/> for an image the decoder refuses.</summary>
    public static byte[] Jpeg(ImageDecoder decoder, ReadOnlyMemory<byte> image, int size = DefaultSize)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        using var decoded = decoder.Decode(image, minShorterSide: 0);
        decoded.Mutate(x => x.Resize(new ResizeOptions { Size = new Size(size, size), Mode = SixLabors.ImageSharp.Processing.ResizeMode.Max }));
        using var output = new MemoryStream();
        decoded.SaveAsJpeg(output, new JpegEncoder { Quality = 80 });
        return output.ToArray();
    }
}
