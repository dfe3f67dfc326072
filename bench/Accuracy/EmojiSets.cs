using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>A labelled set on disk: <c>train/&lt;label&gt;/*.png</c> and a held-out <c>test/&lt;label&gt;/*.png</c>.</summary>
internal sealed record LabelledSet(string Name, string Description, string Train, string Test, int TrainImages, int TestImages, double TrainImbalance);

/// <summary>
/// Builds the benchmark's labelled sets from the emoji npm packages (label: the emoji's category in
/// emoji.json). Train and test hold DIFFERENT emoji (a seeded 60/40 split of the emoji of each
/// category), so a test image is never a restyled copy of a training image's emoji.
/// </summary>
internal static class EmojiSets
{
    /// <summary>The sets <see cref="Build"/> makes (google only where its package is installed).</summary>
    public static readonly string[] Names = ["style-shift", "gray-24px", "imbalanced", "google"];

    private static readonly string[] Categories =
        ["Activities", "Animals & Nature", "Flags", "Food & Drink", "Objects", "People & Body", "Smileys & Emotion", "Symbols", "Travel & Places"];

    /// <param name="trainPerClass">At most this many training images per category (small, fast runs); null: the counts below.</param>
    public static IReadOnlyList<LabelledSet> Build(string repository, string root, int? trainPerClass = null)
    {
        var modules = Path.Combine(repository, "node_modules");
        using var catalog = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(modules, "emoji-datasource-twitter", "emoji.json")));
        var emoji = catalog.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("has_img_twitter").GetBoolean() && e.GetProperty("has_img_facebook").GetBoolean())
            .Select(e => (Image: e.GetProperty("image").GetString()!, Category: e.GetProperty("category").GetString()!))
            .Where(e => Categories.Contains(e.Category))
            .ToList();
        var random = new Random(2026);
        var trainIds = new Dictionary<string, List<string>>();
        var testIds = new Dictionary<string, List<string>>();
        foreach (var category in Categories)
        {
            var images = emoji.Where(e => e.Category == category).Select(e => e.Image).Order(StringComparer.Ordinal).ToArray();
            random.Shuffle(images);
            var cut = (int)(images.Length * 0.6);
            trainIds[category] = [.. images.Take(cut)];
            testIds[category] = [.. images.Skip(cut)];
        }
        string Twitter(string image) => Path.Combine(modules, "emoji-datasource-twitter", "img", "twitter", "64", image);
        string Facebook(string image) => Path.Combine(modules, "emoji-datasource-facebook", "img", "facebook", "64", image);
        string Google(string image) => Path.Combine(modules, "emoji-datasource-google", "img", "google", "64", image);
        Directory.CreateDirectory(root);

        var sets = new List<LabelledSet>();
        var cap = trainPerClass ?? int.MaxValue;
        var balanced = Categories.ToDictionary(c => c, _ => Math.Min(60, cap));
        var balancedTest = Categories.ToDictionary(c => c, _ => 30);
        sets.Add(Write(root, "style-shift", "9 categories; train: Twitter's drawings; test: Facebook's drawings of other emoji", trainIds, testIds, balanced, balancedTest, Twitter, Facebook, null));
        sets.Add(Write(root, "gray-24px", "9 categories; Twitter emoji in grayscale at 24x24 px (upscaled by the preprocessing)", trainIds, testIds, balanced, balancedTest, Twitter, Twitter, GrayLowResolution));
        var skewed = new Dictionary<string, int>
        {
            ["People & Body"] = 150, ["Objects"] = 100, ["Symbols"] = 60, ["Travel & Places"] = 30, ["Food & Drink"] = 15, ["Activities"] = 10,
        }.ToDictionary(p => p.Key, p => Math.Min(p.Value, cap));
        sets.Add(Write(root, "imbalanced", "6 categories, 150/100/60/30/15/10 training images (15:1); balanced test (30 each); Twitter", trainIds, testIds, skewed, skewed.ToDictionary(p => p.Key, _ => 30), Twitter, Twitter, null));
        // Held out: chose nothing (added after every setting was fixed on the three sets above).
        if (Directory.Exists(Path.Combine(modules, "emoji-datasource-google")))
        {
            // The same emoji split, less the few emoji Google has no drawing of.
            Dictionary<string, List<string>> WithGoogle(Dictionary<string, List<string>> ids) => ids.ToDictionary(p => p.Key, p => p.Value.Where(i => File.Exists(Google(i))).ToList());
            sets.Add(Write(root, "google", "9 categories; Google's drawings (Noto), train and test (of other emoji); held out: chose nothing", WithGoogle(trainIds), WithGoogle(testIds), balanced, balancedTest, Google, Google, null));
        }
        return sets;
    }

    private static LabelledSet Write(string root, string name, string description, Dictionary<string, List<string>> trainIds, Dictionary<string, List<string>> testIds,
        Dictionary<string, int> trainCounts, Dictionary<string, int> testCounts, Func<string, string> trainSource, Func<string, string> testSource, Action<IImageProcessingContext>? transform)
    {
        var folder = Path.Combine(root, name);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
        int Copy(string split, Dictionary<string, List<string>> ids, Dictionary<string, int> counts, Func<string, string> source)
        {
            var written = 0;
            foreach (var (category, count) in counts)
            {
                var label = category.Replace(" & ", "-", StringComparison.Ordinal).Replace(' ', '-').ToLowerInvariant();
                var target = Path.Combine(folder, split, label);
                Directory.CreateDirectory(target);
                foreach (var image in ids[category].Take(count))
                {
                    using var png = Image.Load<Rgba32>(source(image));
                    // Transparent pixels become white, as an emoji is usually seen.
                    using var flat = new Image<Rgb24>(png.Width, png.Height, new Rgb24(255, 255, 255));
                    flat.Mutate(x => x.DrawImage(png, 1f));
                    if (transform is not null)
                    {
                        flat.Mutate(transform);
                    }
                    flat.SaveAsPng(Path.Combine(target, image));
                    written++;
                }
            }
            return written;
        }
        var trainImages = Copy("train", trainIds, trainCounts, trainSource);
        var testImages = Copy("test", testIds, testCounts, testSource);
        var used = trainCounts.Select(p => Math.Min(p.Value, trainIds[p.Key].Count)).ToList();
        return new LabelledSet(name, description, Path.Combine(folder, "train"), Path.Combine(folder, "test"), trainImages, testImages, (double)used.Max() / used.Min());
    }

    private static void GrayLowResolution(IImageProcessingContext image) => image.Grayscale().Resize(24, 24, KnownResamplers.Bicubic);
}
