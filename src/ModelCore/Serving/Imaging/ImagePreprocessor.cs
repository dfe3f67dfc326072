using System.Buffers;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Advanced;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using SixLabors.ImageSharp.Processing.Processors.Transforms;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// Turns a decoded RGB24 image into model input exactly as a <see cref="PreprocessingConfig"/> says:
/// resize (and centre crop), then per channel <c>(pixel * Scale - Mean[c]) / Std[c]</c>, or
/// <c>pixel * Scale - MeanImage[c, y, x]</c>, written as float CHW planes in the config's channel order.
/// Immutable and thread-safe; build one per model.
/// </summary>
public sealed class ImagePreprocessor
{
    /// <summary>
    /// Largest intermediate (resized, before the crop) image: 16 MP, 48 MB as RGB, a 250:1 panorama at 256.
    /// Without it a 1 x 65535 JPEG (a 64 KB pixel count, well inside the decoder's limits) would be
    /// resized to 256 x 16,776,960.
    /// </summary>
    public const long MaxResizedPixels = 16_000_000;

    private readonly float[]? _meanImage;
    private readonly float[] _mean;
    private readonly float[] _std;
    private readonly IResampler _resampler;

    /// <param name="config">The model's preprocessing.</param>
    /// <param name="meanImage">
    /// Required when <see cref="PreprocessingConfig.MeanImageFile"/> is set (read it with <see cref="MeanImage.Read"/>):
    /// 3 x InputSize x InputSize values, CHW, in the config's channel order. Not copied: do not change it afterwards.
    /// </param>
    public ImagePreprocessor(PreprocessingConfig config, float[]? meanImage = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(config.InputSize, 1, nameof(config));
        if (config.Resize == ResizeMode.ShorterSideThenCenterCrop && config.ResizeSize < config.InputSize)
        {
            // torchvision would pad with zeros here; no sensible model config asks for that.
            throw new ArgumentException($"ResizeSize {config.ResizeSize} is smaller than InputSize {config.InputSize}: the centre crop would not fit.", nameof(config));
        }

        if (config.MeanImageFile is not null)
        {
            if (meanImage is null)
            {
                throw new ArgumentException($"The config names a mean image ({config.MeanImageFile}); pass its values.", nameof(meanImage));
            }

            if (meanImage.Length != MeanImage.Length(config.InputSize))
            {
                throw new ArgumentException($"The mean image has {meanImage.Length} values; 3x{config.InputSize}x{config.InputSize} needs {MeanImage.Length(config.InputSize)}.", nameof(meanImage));
            }

            _meanImage = meanImage;
            _mean = [];
            _std = [];
        }
        else
        {
            if (meanImage is not null)
            {
                throw new ArgumentException("A mean image was passed but the config has no MeanImageFile; it would be ignored.", nameof(meanImage));
            }

            if (config.Mean.Count != 3 || config.Std.Count != 3)
            {
                throw new ArgumentException($"Mean and Std need 3 values each (got {config.Mean.Count} and {config.Std.Count}).", nameof(config));
            }

            if (config.Std.Any(s => s == 0 || !float.IsFinite(s)))
            {
                throw new ArgumentException("Std values must be finite and non-zero.", nameof(config));
            }

            _mean = [.. config.Mean];
            _std = [.. config.Std];
        }

        _resampler = config.Interpolation switch
        {
            Interpolation.Bilinear => KnownResamplers.Triangle,
            Interpolation.Bicubic => KnownResamplers.Bicubic,
            _ => throw new ArgumentOutOfRangeException(nameof(config), config.Interpolation, "Unknown interpolation."),
        };
        Config = config;
    }

    public PreprocessingConfig Config { get; }

    /// <summary>Floats per image: 3 x InputSize x InputSize.</summary>
    public int InputLength => MeanImage.Length(Config.InputSize);

    /// <summary>
    /// Size after the resize step. Stretch: InputSize x InputSize. ShorterSideThenCenterCrop: the shorter
    /// side becomes ResizeSize and the longer <c>int(ResizeSize * long / short)</c> (torchvision's truncation).
    /// </summary>
    public static (int Width, int Height) ResizedSize(int width, int height, PreprocessingConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfLessThan(width, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(height, 1);
        if (config.Resize == ResizeMode.Stretch)
        {
            return (config.InputSize, config.InputSize);
        }

        // Integer division equals Python's int(size * long / short) here: the quotient's distance
        // from an integer is at least 1/short, far above double rounding error.
        int size = config.ResizeSize;
        // Saturate rather than overflow; Preprocess refuses such sizes (MaxResizedPixels).
        return width <= height
            ? (size, (int)Math.Min(int.MaxValue, (long)size * height / width))
            : ((int)Math.Min(int.MaxValue, (long)size * width / height), size);
    }

    /// <summary>Top-left corner of the centre crop in the resized image: torchvision's <c>int(round((h - crop) / 2.0))</c>, round half to even.</summary>
    public static (int Left, int Top) CropOffset(int resizedWidth, int resizedHeight, int cropSize) =>
        ((int)Math.Round((resizedWidth - cropSize) / 2.0, MidpointRounding.ToEven),
         (int)Math.Round((resizedHeight - cropSize) / 2.0, MidpointRounding.ToEven));

    /// <summary>
    /// The shorter side a decoder must keep for this preprocessing: twice the resize target, so that a
    /// JPEG decoded at reduced scale (<see cref="ImageDecoder.Decode(ReadOnlyMemory{byte}, int)"/>) is still
    /// downsampled by the same resampler afterwards, from at least 2x the final size.
    /// </summary>
    public int DecodeShorterSide => 2 * (Config.Resize == ResizeMode.Stretch ? Config.InputSize : Config.ResizeSize);

    /// <summary>Decodes (at reduced scale where the format allows, see <see cref="DecodeShorterSide"/>) and preprocesses.</summary>
    public float[] DecodeAndPreprocess(ImageDecoder decoder, ReadOnlyMemory<byte> data)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        return decoder.Decode(data, DecodeShorterSide, Preprocess);
    }

    /// <summary>Like <see cref="DecodeAndPreprocess"/>, waiting (cancellably) for the decoder's budget.</summary>
    public Task<float[]> DecodeAndPreprocessAsync(ImageDecoder decoder, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(decoder);
        return decoder.DecodeAsync(data, DecodeShorterSide, Preprocess, cancellationToken);
    }

    /// <summary>Preprocesses one image into a new array of <see cref="InputLength"/> floats.</summary>
    public float[] Preprocess(Image<Rgb24> image)
    {
        var result = new float[InputLength];
        Preprocess(image, result);
        return result;
    }

    /// <summary>Preprocesses one image into the first <see cref="InputLength"/> floats of <paramref name="destination"/>.</summary>
    /// <exception cref="ImageRejectedException"><see cref="ImageErrorCode.ExtremeAspectRatio"/>: the resized image would exceed <see cref="MaxResizedPixels"/>.</exception>
    public void Preprocess(Image<Rgb24> image, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (destination.Length < InputLength)
        {
            throw new ArgumentException($"Destination has {destination.Length} floats; one image needs {InputLength}.", nameof(destination));
        }

        int s = Config.InputSize;
        var pixels = ArrayPool<Rgb24>.Shared.Rent(s * s);
        try
        {
            var crop = pixels.AsSpan(0, s * s);
            ResizeAndCrop(image, crop);
            Normalize(crop, destination[..InputLength]);
        }
        finally
        {
            ArrayPool<Rgb24>.Shared.Return(pixels);
        }
    }

    /// <summary>
    /// Preprocesses a batch into one N x 3 x InputSize x InputSize buffer (image i at offset i * <see cref="InputLength"/>),
    /// e.g. straight into a tensor's backing memory.
    /// </summary>
    public void PreprocessBatch(IReadOnlyList<Image<Rgb24>> images, Span<float> destination)
    {
        ArgumentNullException.ThrowIfNull(images);
        long needed = (long)images.Count * InputLength;
        if (destination.Length < needed)
        {
            throw new ArgumentException($"Destination has {destination.Length} floats; {images.Count} images need {needed}.", nameof(destination));
        }

        for (int i = 0; i < images.Count; i++)
        {
            Preprocess(images[i], destination.Slice(i * InputLength, InputLength));
        }
    }

    private void ResizeAndCrop(Image<Rgb24> image, Span<Rgb24> crop)
    {
        int s = Config.InputSize;
        var (width, height) = ResizedSize(image.Width, image.Height, Config);
        if ((long)width * height > MaxResizedPixels)
        {
            throw new ImageRejectedException(
                ImageErrorCode.ExtremeAspectRatio,
                $"image is {image.Width}x{image.Height}: resizing its shorter side to {Config.ResizeSize} would make it {width}x{height}, over {MaxResizedPixels} pixels");
        }

        var (left, top) = CropOffset(width, height, s);
        var region = new Rectangle(left, top, s, s);

        if (width == image.Width && height == image.Height)
        {
            // Already the resized size: resampling to the same size would only blur.
            CopyRegion(image, region, crop);
            return;
        }

        var options = new ResizeOptions
        {
            Size = new Size(width, height),
            Mode = SixLabors.ImageSharp.Processing.ResizeMode.Stretch,
            Sampler = _resampler,
        };
        using var resized = image.Clone(x => x.Resize(options));
        CopyRegion(resized, region, crop);
    }

    private static void CopyRegion(Image<Rgb24> image, Rectangle region, Span<Rgb24> destination)
    {
        for (int y = 0; y < region.Height; y++)
        {
            var row = image.DangerousGetPixelRowMemory(region.Top + y).Span;
            row.Slice(region.Left, region.Width).CopyTo(destination.Slice(y * region.Width, region.Width));
        }
    }

    /// <summary>
    /// The model's view of an image: the resized, cropped pixels that <see cref="Preprocess(Image{Rgb24})"/> turned into
    /// <paramref name="input"/>, recovered by undoing the normalisation (to within rounding), InputSize x InputSize.
    /// </summary>
    public Image<Rgb24> ToImage(ReadOnlySpan<float> input)
    {
        if (input.Length != InputLength)
        {
            throw new ArgumentException($"Expected {InputLength} floats, got {input.Length}.", nameof(input));
        }
        int s = Config.InputSize;
        bool bgr = Config.ChannelOrder == ChannelOrder.Bgr;
        var image = new Image<Rgb24>(s, s);
        for (int y = 0; y < s; y++)
        {
            for (int x = 0; x < s; x++)
            {
                int i = (y * s) + x;
                var (first, second, third) = (Unnormalize(input, 0, i), Unnormalize(input, 1, i), Unnormalize(input, 2, i));
                image[x, y] = bgr ? new Rgb24(third, second, first) : new Rgb24(first, second, third);
            }
        }
        return image;
    }

    private byte Unnormalize(ReadOnlySpan<float> input, int channel, int i)
    {
        var at = (channel * Config.InputSize * Config.InputSize) + i;
        var value = _meanImage is not null ? input[at] + _meanImage[at] : (input[at] * _std[channel]) + _mean[channel];
        return (byte)Math.Clamp(MathF.Round(value / Config.Scale), 0, 255);
    }

    private void Normalize(ReadOnlySpan<Rgb24> pixels, Span<float> destination)
    {
        int plane = pixels.Length;
        var first = destination[..plane];
        var second = destination.Slice(plane, plane);
        var third = destination.Slice(2 * plane, plane);
        bool bgr = Config.ChannelOrder == ChannelOrder.Bgr;
        float scale = Config.Scale;

        for (int i = 0; i < plane; i++)
        {
            var p = pixels[i];
            first[i] = (bgr ? p.B : p.R) * scale;
            second[i] = p.G * scale;
            third[i] = (bgr ? p.R : p.B) * scale;
        }

        if (_meanImage is not null)
        {
            for (int i = 0; i < destination.Length; i++)
            {
                destination[i] -= _meanImage[i];
            }

            return;
        }

        Standardize(first, _mean[0], _std[0]);
        Standardize(second, _mean[1], _std[1]);
        Standardize(third, _mean[2], _std[2]);
    }

    private static void Standardize(Span<float> values, float mean, float std)
    {
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (values[i] - mean) / std;
        }
    }
}
