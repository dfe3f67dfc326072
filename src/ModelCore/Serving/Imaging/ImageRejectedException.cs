namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// Why an input was refused. The numeric values are stable: they may be stored in prediction
/// results and mapped to HTTP status codes (400 Corrupt, 413 TooLarge/TooManyPixels, 415 UnsupportedFormat).
/// </summary>
public enum ImageErrorCode
{
    /// <summary>No bytes at all.</summary>
    Empty = 1,

    /// <summary>More bytes than <see cref="ImageLimits.MaxBytes"/>.</summary>
    TooLarge = 2,

    /// <summary>The header declares more pixels than <see cref="ImageLimits.MaxPixels"/>.</summary>
    TooManyPixels = 3,

    /// <summary>Not an image format we read (text, a PDF, random bytes): HTTP 415.</summary>
    UnsupportedFormat = 4,

    /// <summary>A format we read, but the data is damaged or truncated: HTTP 400.</summary>
    Corrupt = 5,

    /// <summary>A format we read, in a variant the decoder does not implement (e.g. an unusual TIFF compression).</summary>
    UnsupportedFeature = 6,

    /// <summary>
    /// So elongated (e.g. 2 x 20,000,000) that resizing its shorter side to the model's size would make a
    /// huge image; refused by <see cref="ImagePreprocessor"/>.
    /// </summary>
    ExtremeAspectRatio = 7,
}

/// <summary>An input image refused by <see cref="ImageDecoder"/>, with a machine-readable <see cref="Code"/>.</summary>
public sealed class ImageRejectedException : Exception
{
    public ImageRejectedException()
        : this(ImageErrorCode.Corrupt, "The image was rejected.")
    {
    }

    public ImageRejectedException(string message)
        : this(ImageErrorCode.Corrupt, message)
    {
    }

    public ImageRejectedException(string message, Exception innerException)
        : this(ImageErrorCode.Corrupt, message, innerException)
    {
    }

    public ImageRejectedException(ImageErrorCode code, string message, Exception? innerException = null)
        : base(message, innerException)
    {
        Code = code;
    }

    /// <summary>Stable reason, for status codes and stored results.</summary>
    public ImageErrorCode Code { get; }
}
