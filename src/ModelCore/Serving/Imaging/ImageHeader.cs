namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>What an image's header says, read without decoding its pixels.</summary>
/// <param name="Format">ImageSharp's format name: JPEG, PNG, GIF, BMP, Webp or TIFF.</param>
/// <param name="MimeType">The format's usual MIME type, e.g. image/jpeg.</param>
/// <param name="Width">Width as stored in the file (before EXIF orientation).</param>
/// <param name="Height">Height as stored in the file (before EXIF orientation).</param>
/// <param name="Orientation">EXIF orientation (1..8), 1 when absent.</param>
public sealed record ImageHeader(string Format, string MimeType, int Width, int Height, int Orientation)
{
    /// <summary>Width x height.</summary>
    public long Pixels => (long)Width * Height;

    /// <summary>Whether the EXIF orientation swaps width and height (orientations 5 to 8).</summary>
    public bool SwapsAxes => Orientation is >= 5 and <= 8;

    /// <summary>Width after applying the EXIF orientation, i.e. of the image <see cref="ImageDecoder.Decode(ReadOnlyMemory{byte})"/> returns.</summary>
    public int OrientedWidth => SwapsAxes ? Height : Width;

    /// <summary>Height after applying the EXIF orientation.</summary>
    public int OrientedHeight => SwapsAxes ? Width : Height;
}
