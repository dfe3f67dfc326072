using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Tiff;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.Metadata.Profiles.Exif;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// Decodes untrusted JPEG, PNG, GIF (first frame), BMP, WebP and TIFF input to upright RGB24,
/// refusing anything over <see cref="ImageLimits"/> before its pixels are decoded. Create one and
/// share it: it is immutable and thread-safe, and it owns a bounded ImageSharp configuration
/// (its own allocator, pool and decoders; nothing global is changed).
/// </summary>
public sealed partial class ImageDecoder
{
    private const int ReadChunkBytes = 81920;

    private readonly Configuration _configuration;

    public ImageDecoder(ImageLimits? limits = null, DecodeBudget? budget = null)
        : this(limits ?? ImageLimits.Default, allocator: null)
    {
        Budget = budget;
    }

    /// <summary>For tests: the same decoder over a given allocator (e.g. one that counts bytes).</summary>
    internal ImageDecoder(ImageLimits limits, MemoryAllocator? allocator)
    {
        ArgumentNullException.ThrowIfNull(limits);
        limits.Validate();
        Limits = limits;

        // Only the formats we promise (TGA's detector matches many random byte strings, PBM is not
        // an upload format), each with its own decoder instance so that Configuration.Default stays untouched.
        _configuration = new Configuration(
            new JpegConfigurationModule(),
            new PngConfigurationModule(),
            new GifConfigurationModule(),
            new BmpConfigurationModule(),
            new WebpConfigurationModule(),
            new TiffConfigurationModule())
        {
            MemoryAllocator = allocator ?? MemoryAllocator.Create(new MemoryAllocatorOptions
            {
                MaximumPoolSizeMegabytes = limits.MemoryPoolMegabytes,
                AllocationLimitMegabytes = limits.AllocationLimitMegabytes,
            }),
        };

        // First frame only: an animated GIF (or multi-page TIFF) costs one frame, not hundreds.
        _configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
        _configuration.ImageFormatsManager.SetDecoder(TiffFormat.Instance, new TiffDecoder { DecodingMode = FrameDecodingMode.First });
    }

    /// <summary>The limits this decoder enforces.</summary>
    public ImageLimits Limits { get; }

    /// <summary>
    /// The process-wide bound every decode of this decoder is charged to; null: none (the CLI, tests). A decoder with
    /// a budget decodes only through <see cref="DecodeAsync{T}"/> and <see cref="Decode{T}"/>, which hold the charge
    /// until the decoded image is disposed; <see cref="Decode(ReadOnlyMemory{byte}, int)"/>, whose image outlives
    /// the call, refuses to run on it.
    /// </summary>
    public DecodeBudget? Budget { get; }

    /// <summary>Reads the header only: format, size, orientation. Throws <see cref="ImageRejectedException"/> for bad input.</summary>
    /// <remarks>Enforces the byte limit but not the pixel limit, so a caller can report an oversized image's size.</remarks>
    public ImageHeader Identify(ReadOnlyMemory<byte> data)
    {
        ThrowIfEmptyOrOverByteLimit(data.Length);
        using var stream = AsStream(data);
        return IdentifyCore(stream, data.Span);
    }

    /// <summary>Like <see cref="Identify"/>, returning the refusal instead of throwing it.</summary>
    public bool TryIdentify(ReadOnlyMemory<byte> data, [NotNullWhen(true)] out ImageHeader? header, [NotNullWhen(false)] out ImageRejectedException? error)
    {
        try
        {
            header = Identify(data);
            error = null;
            return true;
        }
        catch (ImageRejectedException e)
        {
            header = null;
            error = e;
            return false;
        }
    }

    /// <summary>Decodes a stream read under the byte limit (see <see cref="ReadAllBytes"/>).</summary>
    public Image<Rgb24> Decode(Stream stream) => Decode(ReadAllBytes(stream));

    /// <inheritdoc cref="Decode(Stream)"/>
    public async Task<Image<Rgb24>> DecodeAsync(Stream stream, CancellationToken cancellationToken = default)
    {
        var data = await ReadAllBytesAsync(stream, cancellationToken).ConfigureAwait(false);
        return Decode(data);
    }

    /// <summary>
    /// Decodes to an upright (EXIF orientation applied), opaque (alpha laid over white) RGB24 image, the
    /// first frame of animations. The caller disposes it. Throws <see cref="ImageRejectedException"/>
    /// for anything empty, too big, not an image, damaged or truncated; never decodes past the limits.
    /// </summary>
    public Image<Rgb24> Decode(ReadOnlyMemory<byte> data) => Decode(data, minShorterSide: 0);

    /// <summary>
    /// Like <see cref="Decode(ReadOnlyMemory{byte})"/>, but a JPEG much larger than needed may come back
    /// decoded at reduced scale (1/2, 1/4 or 1/8, see <see cref="ScaledJpegDecoder"/>) with its shorter side
    /// still at least <paramref name="minShorterSide"/> pixels. The limits and checks are the same.
    /// </summary>
    public Image<Rgb24> Decode(ReadOnlyMemory<byte> data, int minShorterSide)
    {
        if (Budget is not null)
        {
            throw new InvalidOperationException("This decoder charges a decode budget: decode with DecodeAsync(data, minShorterSide, use, cancellationToken).");
        }
        var header = Inspect(data);
        var plan = Plan(header, minShorterSide);
        return (plan is { } p ? TryDecodeScaled(data, header, p) : null) ?? DecodeFull(data, header);
    }

    /// <summary>
    /// Decodes as <see cref="Decode(ReadOnlyMemory{byte}, int)"/> does, within <see cref="Budget"/>: the decode is
    /// charged <see cref="DecodeCost"/> (read from the header, before any pixel is decoded) and waits while that does
    /// not fit; <paramref name="use"/> runs on the decoded image, which is then disposed and the charge returned.
    /// Throws <see cref="ImageRejectedException"/> for bad input (before waiting), <see cref="OperationCanceledException"/>
    /// when cancelled while waiting.
    /// </summary>
    public async Task<T> DecodeAsync<T>(ReadOnlyMemory<byte> data, int minShorterSide, Func<Image<Rgb24>, T> use, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(use);
        var header = Inspect(data);
        if (Plan(header, minShorterSide) is { } plan)
        {
            using var lease = await ChargeAsync(ScaledCost(header, plan), cancellationToken).ConfigureAwait(false);
            using var scaled = TryDecodeScaled(data, header, plan);
            if (scaled is not null)
            {
                return use(scaled);
            }
        }
        // No reduction, or Skia declined the data: the full decode, charged in full (the small charge was returned).
        using (await ChargeAsync(FullCost(header), cancellationToken).ConfigureAwait(false))
        {
            using var image = DecodeFull(data, header);
            return use(image);
        }
    }

    /// <summary>Blocking form of <see cref="DecodeAsync{T}"/> for synchronous callers (the CLI, tests); without a budget it never waits.</summary>
    public T Decode<T>(ReadOnlyMemory<byte> data, int minShorterSide, Func<Image<Rgb24>, T> use, CancellationToken cancellationToken = default) =>
        DecodeAsync(data, minShorterSide, use, cancellationToken).GetAwaiter().GetResult();

    /// <summary>
    /// Bytes of the pixel buffers decoding this image holds at once, the charge against <see cref="Budget"/>: RGB24
    /// (3 bytes a pixel) for a JPEG decoded in full; RGBA32 then RGB24 (7) for the other formats, which may carry
    /// alpha; for a JPEG decoded at reduced scale, Skia's RGBA buffer, its RGBA32 copy and the RGB24 result (11) at
    /// the reduced size. An EXIF rotation adds one more frame. The decoders' own working buffers (JPEG coefficients,
    /// PNG scanlines) are not counted.
    /// </summary>
    public static long DecodeCost(ImageHeader header, int minShorterSide)
    {
        ArgumentNullException.ThrowIfNull(header);
        return Plan(header, minShorterSide) is { } plan ? ScaledCost(header, plan) : FullCost(header);
    }

    private static long FullCost(ImageHeader header)
    {
        var jpeg = header.Format == JpegFormat.Instance.Name;
        long perPixel = jpeg ? 3 : 4 + 3;
        if (header.Orientation != 1)
        {
            perPixel += jpeg ? 3 : 4;
        }
        return header.Pixels * perPixel;
    }

    private static long ScaledCost(ImageHeader header, (float Scale, int Width, int Height) plan) =>
        (long)plan.Width * plan.Height * (4 + 4 + 3 + (header.Orientation != 1 ? 3 : 0));

    private static (float Scale, int Width, int Height)? Plan(ImageHeader header, int minShorterSide) =>
        header.Format == JpegFormat.Instance.Name ? ScaledJpegDecoder.Plan(header, minShorterSide) : null;

    private ValueTask<DecodeBudget.Lease?> ChargeAsync(long bytes, CancellationToken cancellationToken)
    {
        if (Budget is null)
        {
            return ValueTask.FromResult<DecodeBudget.Lease?>(null);
        }
        var pending = Budget.AcquireAsync(bytes, cancellationToken);
        return pending.IsCompletedSuccessfully ? ValueTask.FromResult<DecodeBudget.Lease?>(pending.Result) : Await(pending);

        static async ValueTask<DecodeBudget.Lease?> Await(ValueTask<DecodeBudget.Lease> pending) => await pending.ConfigureAwait(false);
    }

    /// <summary>Every check that needs no pixel: bytes, format, header, pixel limit, completeness.</summary>
    private ImageHeader Inspect(ReadOnlyMemory<byte> data)
    {
        ThrowIfEmptyOrOverByteLimit(data.Length);
        using var stream = AsStream(data);
        var header = IdentifyCore(stream, data.Span);
        if (header.Pixels > Limits.MaxPixels)
        {
            throw new ImageRejectedException(
                ImageErrorCode.TooManyPixels,
                string.Create(CultureInfo.InvariantCulture, $"image is {header.Width}x{header.Height} = {Megapixels(header.Pixels)} MP, over the {Megapixels(Limits.MaxPixels)} MP limit"));
        }

        EnsureComplete(header.Format, data.Span);
        return header;
    }

    private Image<Rgb24>? TryDecodeScaled(ReadOnlyMemory<byte> data, ImageHeader header, (float Scale, int Width, int Height) plan)
    {
        try
        {
            return ScaledJpegDecoder.TryDecode(data.Span, header, plan, _configuration);
        }
        catch (Exception e) when (e is not ImageRejectedException)
        {
            throw Reject(e, header.Format);
        }
    }

    private Image<Rgb24> DecodeFull(ReadOnlyMemory<byte> data, ImageHeader header)
    {
        using var stream = AsStream(data);
        try
        {
            // JPEG has no alpha: decode straight to RGB24 (half the memory of a detour through RGBA).
            if (header.Format == JpegFormat.Instance.Name)
            {
                return Orient(Image.Load<Rgb24>(_configuration, stream));
            }

            using var rgba = Orient(Image.Load<Rgba32>(_configuration, stream));
            return FlattenOntoWhite(rgba);
        }
        catch (Exception e) when (e is not ImageRejectedException)
        {
            throw Reject(e, header.Format);
        }
    }

    private ImageHeader IdentifyCore(MemoryStream stream, ReadOnlySpan<byte> data)
    {
        var format = Image.DetectFormat(_configuration, data);
        if (format is null)
        {
            throw new ImageRejectedException(
                ImageErrorCode.UnsupportedFormat,
                $"not a supported image (JPEG, PNG, GIF, BMP, WebP or TIFF): the data starts with {DescribeStart(data)}");
        }

        IImageInfo? info;
        try
        {
            info = Image.Identify(_configuration, stream);
        }
        catch (Exception e)
        {
            throw Reject(e, format.Name);
        }

        if (info is null)
        {
            throw new ImageRejectedException(ImageErrorCode.Corrupt, $"{format.Name} header could not be read");
        }

        if (info.Width <= 0 || info.Height <= 0)
        {
            throw new ImageRejectedException(ImageErrorCode.Corrupt, $"{format.Name} header declares a {info.Width}x{info.Height} image");
        }

        return new ImageHeader(format.Name, format.DefaultMimeType, info.Width, info.Height, ReadOrientation(info.Metadata));
    }

    private static int ReadOrientation(ImageMetadata metadata)
    {
        var value = metadata.ExifProfile?.GetValue(ExifTag.Orientation);
        return value is not null && value.Value is >= 1 and <= 8 ? value.Value : 1;
    }

    /// <summary>
    /// ImageSharp 2.1 decodes a JPEG cut inside its scan data without an error, the missing rows black
    /// (seen with 2.1.13), and a classifier would then score half an image; so a JPEG needs its end
    /// marker. ImageSharp reports a PNG cut inside a data chunk, but one cut between IDAT chunks would
    /// also lose rows, so a PNG must reach IEND.
    /// </summary>
    private static void EnsureComplete(string format, ReadOnlySpan<byte> data)
    {
        if (format == JpegFormat.Instance.Name && !JpegStructure.HasEndOfImageAfterScan(data))
        {
            throw new ImageRejectedException(ImageErrorCode.Corrupt, "JPEG is truncated: no end-of-image marker after the image data");
        }

        if (format == PngFormat.Instance.Name && !PngStructure.HasEndChunk(data))
        {
            throw new ImageRejectedException(ImageErrorCode.Corrupt, "PNG is truncated: its chunks end before IEND");
        }
    }

    private static Image<TPixel> Orient<TPixel>(Image<TPixel> image)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        try
        {
            image.Mutate(x => x.AutoOrient());
            return image;
        }
        catch
        {
            image.Dispose();
            throw;
        }
    }

    private Image<Rgb24> FlattenOntoWhite(Image<Rgba32> source)
    {
        var result = new Image<Rgb24>(_configuration, source.Width, source.Height);
        try
        {
            source.ProcessPixelRows(result, static (src, dst) =>
            {
                for (int y = 0; y < src.Height; y++)
                {
                    var from = src.GetRowSpan(y);
                    var to = dst.GetRowSpan(y);
                    for (int x = 0; x < from.Length; x++)
                    {
                        var p = from[x];
                        int a = p.A;
                        int white = 255 * (255 - a);
                        to[x] = new Rgb24(
                            (byte)(((p.R * a) + white + 127) / 255),
                            (byte)(((p.G * a) + white + 127) / 255),
                            (byte)(((p.B * a) + white + 127) / 255));
                    }
                }
            });
            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    private static ImageRejectedException Reject(Exception e, string format) => e switch
    {
        ImageRejectedException rejected => rejected,
        UnknownImageFormatException => new ImageRejectedException(ImageErrorCode.UnsupportedFormat, $"not a supported image: {e.Message}", e),
        InvalidMemoryOperationException => new ImageRejectedException(
            ImageErrorCode.Corrupt, $"{format} data asks for a buffer over the decoder's allocation limit (its frames disagree with its header): {e.Message}", e),
        NotSupportedException => new ImageRejectedException(ImageErrorCode.UnsupportedFeature, $"{format} variant not supported: {e.Message}", e),
        OperationCanceledException or OutOfMemoryException => throw e,

        // A decoder meeting malformed data may throw anything (IndexOutOfRange, EndOfStream, ...):
        // for an untrusted upload all of these mean the same thing.
        _ => new ImageRejectedException(ImageErrorCode.Corrupt, $"{format} data is damaged: {e.Message}", e),
    };

    private static string Megapixels(long pixels) => (pixels / 1e6).ToString("0.#", CultureInfo.InvariantCulture);

    private static string DescribeStart(ReadOnlySpan<byte> data)
    {
        var head = data[..Math.Min(8, data.Length)];
        return $"0x{Convert.ToHexString(head)} ({data.Length} bytes)";
    }

}
