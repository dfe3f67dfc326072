using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Bench.TrainingMemory;

/// <summary>
/// A synthetic ImageFolder set: circles, squares, triangles and crosses in random colours at random places, on
/// coloured noise, 64 to 128 px on a side, saved as PNG under <c>&lt;root&gt;/&lt;label&gt;/</c>; seeded per image.
/// </summary>
internal static class Shapes
{
    public static readonly string[] Labels = ["circle", "square", "triangle", "cross"];

    public static void Write(string root, int count, int seed)
    {
        foreach (var label in Labels)
        {
            Directory.CreateDirectory(Path.Combine(root, label));
        }
        Parallel.For(0, count, i =>
        {
            var shape = i % Labels.Length;
            using var image = Draw(shape, new Random(HashCode.Combine(seed, i)));
            image.SaveAsPng(Path.Combine(root, Labels[shape], $"{i:D6}.png"));
        });
    }

    private static Image<Rgb24> Draw(int shape, Random random)
    {
        var (width, height) = (random.Next(64, 129), random.Next(64, 129));
        var image = new Image<Rgb24>(width, height);
        var size = Math.Min(width, height);
        var radius = size * (0.2 + (0.15 * random.NextDouble()));
        var cx = radius + (random.NextDouble() * (width - (2 * radius)));
        var cy = radius + (random.NextDouble() * (height - (2 * radius)));
        var colour = new Rgb24((byte)random.Next(256), (byte)random.Next(256), (byte)random.Next(256));
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var (dx, dy) = ((x - cx) / radius, (y - cy) / radius);
                var inside = shape switch
                {
                    0 => (dx * dx) + (dy * dy) <= 1,
                    1 => Math.Abs(dx) <= 0.85 && Math.Abs(dy) <= 0.85,
                    2 => dy <= 0.8 && dy >= -1 && Math.Abs(dx) <= (dy + 1) / 1.8 * 0.9,
                    _ => (Math.Abs(dx) <= 0.25 && Math.Abs(dy) <= 1) || (Math.Abs(dy) <= 0.25 && Math.Abs(dx) <= 1),
                };
                image[x, y] = inside ? colour : new Rgb24((byte)random.Next(60, 160), (byte)random.Next(60, 160), (byte)random.Next(60, 160));
            }
        }
        return image;
    }
}
