namespace ServerlessClassifier.Tests.Common;

/// <summary>Files the tests use that live in the repository or in its npm tools (installed by scripts/test.sh).</summary>
public static class TestAssets
{
    public static string RepositoryRoot { get; } = FindRepositoryRoot();

    /// <summary>Twitter emoji PNGs (64x64, RGBA) from the npm package emoji-datasource-twitter: real images, no download at run time.</summary>
    public static string EmojiDirectory
    {
        get
        {
            var directory = Path.Combine(RepositoryRoot, "node_modules", "emoji-datasource-twitter", "img", "twitter", "64");
            return Directory.Exists(directory)
                ? directory
                : throw new DirectoryNotFoundException($"{directory} is missing: run scripts/test.sh (it runs npm ci).");
        }
    }

    /// <summary><paramref name="count"/> emoji files spread evenly over the whole set, in a stable order.</summary>
    public static IReadOnlyList<string> SampleEmoji(int count)
    {
        var files = Directory.GetFiles(EmojiDirectory, "*.png").Order(StringComparer.Ordinal).ToList();
        return [.. Enumerable.Range(0, count).Select(i => files[(int)((long)i * files.Count / count)])];
    }

    /// <summary>
    /// Writes an ImageFolder of real emoji by category (the npm package's emoji.json), the first
    /// <paramref name="perClass"/> of each in name order, and returns <paramref name="root"/>.
    /// </summary>
    public static string EmojiByCategory(string root, int perClass, params (string Category, string Label)[] classes)
    {
        using var catalog = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(EmojiDirectory, "..", "..", "..", "emoji.json")));
        foreach (var (category, label) in classes)
        {
            Directory.CreateDirectory(Path.Combine(root, label));
            var files = catalog.RootElement.EnumerateArray()
                .Where(e => e.GetProperty("category").GetString() == category && e.GetProperty("has_img_twitter").GetBoolean())
                .Select(e => e.GetProperty("image").GetString()!).Order(StringComparer.Ordinal).Take(perClass);
            foreach (var file in files)
            {
                File.Copy(Path.Combine(EmojiDirectory, file), Path.Combine(root, label, file));
            }
        }
        return root;
    }

    private static string FindRepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "ServerlessClassifier.sln")))
            {
                return directory.FullName;
            }
        }
        throw new DirectoryNotFoundException($"No ServerlessClassifier.sln above {AppContext.BaseDirectory}.");
    }
}
