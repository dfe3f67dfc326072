using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>Tiny labelled image folders for training runs: noisy 40 px images of one flat colour per class.</summary>
public static class ColourSets
{
    /// <summary>Writes <c>root/label/i.png</c>, six images per class (the same noise for the same arguments); returns <paramref name="root"/>.</summary>
    public static string Write(string root, params (string Label, Rgb24 Colour)[] classes)
    {
        ArgumentNullException.ThrowIfNull(classes);
        var random = new Random(3);
        foreach (var (label, colour) in classes)
        {
            Directory.CreateDirectory(Path.Combine(root, label));
            for (var i = 0; i < 6; i++)
            {
                using var image = new Image<Rgb24>(40, 40);
                for (var y = 0; y < 40; y++)
                {
                    for (var x = 0; x < 40; x++)
                    {
                        var noise = random.Next(-40, 41);
                        image[x, y] = new((byte)Math.Clamp(colour.R + noise, 0, 255), (byte)Math.Clamp(colour.G + noise, 0, 255), (byte)Math.Clamp(colour.B + noise, 0, 255));
                    }
                }
                image.SaveAsPng(Path.Combine(root, label, $"{i}.png"));
            }
        }
        return root;
    }
}
