using System.Runtime.InteropServices;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SkiaSharp;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// Decodes a large JPEG at 1/2, 1/4 or 1/8 scale (libjpeg-turbo's DCT scaling, through SkiaSharp),
/// so a 12-megapixel phone photo that will be shrunk to 224 pixels is never decoded at full size.
/// ImageSharp 2.x cannot do this. Used only after <see cref="ImageDecoder"/> has identified the
/// header and enforced every limit, and only for JPEG; anything Skia cannot decode cleanly is left to
/// the ImageSharp path (the caller falls back), so both paths answer hostile input the same way.
/// </summary>
internal static class ScaledJpegDecoder
{
    private static readonly float[] Scales = [0.125f, 0.25f, 0.5f];

    /// <summary>
    /// The reduced size a JPEG with this header decodes to when its shorter side must stay at least
    /// <paramref name="minShorterSide"/> pixels (libjpeg's scaled size: each side times the scale, rounded up);
    /// null when no reduction applies. Read from the header alone, so a decode can be charged before it runs.
    /// </summary>
    public static (float Scale, int Width, int Height)? Plan(ImageHeader header, int minShorterSide)
    {
        if (minShorterSide <= 0 || Math.Min(header.Width, header.Height) < 2 * minShorterSide)
        {
            return null;
        }
        foreach (var scale in Scales)
        {
            var eighths = (int)(scale * 8);
            var width = (int)(((long)header.Width * eighths + 7) / 8);
            var height = (int)(((long)header.Height * eighths + 7) / 8);
            if (Math.Min(width, height) >= minShorterSide && width < header.Width)
            {
                return (scale, width, height);
            }
        }
        return null;
    }

    /// <summary>
    /// The image decoded at the <see cref="Plan"/>ned size (EXIF orientation applied, as the full decode does);
    /// null when Skia cannot decode the data or would decode it at another size (the caller then uses the full decode).
    /// </summary>
    public static Image<Rgb24>? TryDecode(ReadOnlySpan<byte> jpeg, ImageHeader header, (float Scale, int Width, int Height) plan, Configuration configuration)
    {
        using var data = SKData.CreateCopy(jpeg);
        using var codec = SKCodec.Create(data);
        if (codec is null || codec.EncodedFormat != SKEncodedImageFormat.Jpeg)
        {
            return null;
        }
        var size = codec.GetScaledDimensions(plan.Scale);
        if (size.Width != plan.Width || size.Height != plan.Height)
        {
            return null;
        }
        var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var pixels = new byte[info.BytesSize];
        var handle = GCHandle.Alloc(pixels, GCHandleType.Pinned);
        try
        {
            if (codec.GetPixels(info, handle.AddrOfPinnedObject()) != SKCodecResult.Success)
            {
                return null;
            }
        }
        finally
        {
            handle.Free();
        }
        using var rgba = Image.LoadPixelData<Rgba32>(configuration, pixels, size.Width, size.Height);
        var rgb = rgba.CloneAs<Rgb24>(configuration);
        if (header.Orientation != 1)
        {
            rgb.Metadata.ExifProfile = new ExifProfile();
            rgb.Metadata.ExifProfile.SetValue(ExifTag.Orientation, (ushort)header.Orientation);
            rgb.Mutate(x => x.AutoOrient());
        }
        return rgb;
    }
}
