using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>
/// Fine-tuning augmentation on decoded images: torchvision's RandomResizedCrop (area fraction
/// [scaleMin, 1], aspect ratio [3/4, 4/3], ten tries then a centre square) and, unless mirroring is off, a
/// horizontal flip with probability 1/2, then the model's normalisation. All randomness comes from the caller's
/// <see cref="Random"/>, so a seed reproduces it.
/// </summary>
internal sealed class Augmentation
{
    private readonly ImagePreprocessor stretch;
    private readonly double scaleMin;
    private readonly bool mirror;

    public Augmentation(PreprocessingConfig config, float[]? meanImage, double scaleMin, bool mirror = true)
    {
        // The crop is resized straight to the input size with the model's own filter and normalisation.
        stretch = new ImagePreprocessor(config with { Resize = Imaging.ResizeMode.Stretch }, meanImage);
        this.scaleMin = scaleMin;
        this.mirror = mirror;
    }

    /// <summary>
    /// The image every epoch crops from: decoded, then resized as serving resizes before its centre crop
    /// (shorter side to ResizeSize, or InputSize x InputSize for Stretch). Keeps memory per image small.
    /// </summary>
    public static Image<Rgb24> WorkingImage(Image<Rgb24> decoded, PreprocessingConfig config)
    {
        var (width, height) = ImagePreprocessor.ResizedSize(decoded.Width, decoded.Height, config);
        if ((long)width * height > ImagePreprocessor.MaxResizedPixels)
        {
            throw new ImageRejectedException(ImageErrorCode.ExtremeAspectRatio, $"image is {decoded.Width}x{decoded.Height}; resized it would be {width}x{height}");
        }
        var sampler = config.Interpolation == Interpolation.Bicubic ? KnownResamplers.Bicubic : KnownResamplers.Triangle;
        return width == decoded.Width && height == decoded.Height
            ? decoded.Clone()
            : decoded.Clone(c => c.Resize(new ResizeOptions { Size = new Size(width, height), Mode = SixLabors.ImageSharp.Processing.ResizeMode.Stretch, Sampler = sampler }));
    }

    public void Apply(Image<Rgb24> working, Random random, Span<float> destination)
    {
        var (w, h) = (working.Width, working.Height);
        var area = (double)w * h;
        var region = default(Rectangle);
        for (var attempt = 0; attempt < 10 && region.Width == 0; attempt++)
        {
            var target = area * (scaleMin + ((1 - scaleMin) * random.NextDouble()));
            var ratio = Math.Exp(Math.Log(3.0 / 4) + ((Math.Log(4.0 / 3) - Math.Log(3.0 / 4)) * random.NextDouble()));
            var cw = (int)Math.Round(Math.Sqrt(target * ratio));
            var ch = (int)Math.Round(Math.Sqrt(target / ratio));
            if (cw >= 1 && ch >= 1 && cw <= w && ch <= h)
            {
                region = new Rectangle(random.Next(0, w - cw + 1), random.Next(0, h - ch + 1), cw, ch);
            }
        }
        if (region.Width == 0)
        {
            var side = Math.Min(w, h);
            region = new Rectangle((w - side) / 2, (h - side) / 2, side, side);
        }
        var flip = random.NextDouble() < 0.5 && mirror;
        using var crop = working.Clone(c =>
        {
            c.Crop(region);
            if (flip)
            {
                c.Flip(FlipMode.Horizontal);
            }
        });
        stretch.Preprocess(crop, destination);
    }
}
