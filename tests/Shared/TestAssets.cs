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
