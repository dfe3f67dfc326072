using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>
/// Tiny, separable ImageFolder sets made in the test: red circles, green squares and blue triangles
/// at random places and sizes on coloured noise, saved as PNG under <c>&lt;root&gt;/&lt;label&gt;/</c>.
/// </summary>
internal sealed class SyntheticShapes : IDisposable
{
    public static readonly string[] Labels = ["circle", "square", "triangle"];

    public SyntheticShapes(int perClass, int size = 64, int seed = 1, string? subfolder = null)
    {
        Root = Path.Combine(Path.GetTempPath(), $"shapes-{Guid.NewGuid():N}");
        Write(Root, perClass, size, seed, subfolder);
    }

    public string Root { get; }

    public static void Write(string root, int perClass, int size, int seed, string? subfolder = null, IReadOnlyList<string>? labelsOnDisk = null)
    {
        var random = new Random(seed);
        for (var c = 0; c < Labels.Length; c++)
        {
            var folder = Path.Combine(root, subfolder ?? "", (labelsOnDisk ?? Labels)[c]);
            Directory.CreateDirectory(folder);
            for (var i = 0; i < perClass; i++)
            {
                using var image = Draw(c, size, random);
                image.SaveAsPng(Path.Combine(folder, $"{i:D3}.png"));
            }
        }
    }

    public static Image<Rgb24> Draw(int shape, int size, Random random)
    {
        var image = new Image<Rgb24>(size, size);
        var radius = size * (0.2 + (0.15 * random.NextDouble()));
        var cx = radius + (random.NextDouble() * (size - (2 * radius)));
        var cy = radius + (random.NextDouble() * (size - (2 * radius)));
        Rgb24 colour = shape switch { 0 => new(220, 30, 30), 1 => new(30, 200, 30), _ => new(30, 30, 220) };
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var (dx, dy) = ((x - cx) / radius, (y - cy) / radius);
                var inside = shape switch
                {
                    0 => (dx * dx) + (dy * dy) <= 1,
                    1 => Math.Abs(dx) <= 0.85 && Math.Abs(dy) <= 0.85,
                    _ => dy <= 0.8 && dy >= -1 && Math.Abs(dx) <= (dy + 1) / 1.8 * 0.9,
                };
                var noise = (byte)random.Next(60, 160);
                image[x, y] = inside ? colour : new Rgb24(noise, (byte)random.Next(60, 160), (byte)random.Next(60, 160));
            }
        }
        return image;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>An <see cref="IProgress{T}"/> that calls back synchronously on the reporting thread (unlike <see cref="Progress{T}"/>).</summary>
internal sealed class SyncProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
