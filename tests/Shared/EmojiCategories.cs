using System.Text.Json;

namespace ServerlessClassifier.Tests.Common;

/// <summary>The Twitter emoji PNGs of one category of the npm package's emoji.json (e.g. <c>Flags</c>), in the package's sort order.</summary>
public static class EmojiCategories
{
    private static readonly Lazy<IReadOnlyList<(string Category, string File)>> Catalog = new(() =>
    {
        var json = Path.Combine(TestAssets.RepositoryRoot, "node_modules", "emoji-datasource-twitter", "emoji.json");
        using var document = JsonDocument.Parse(File.ReadAllBytes(json));
        return [.. document.RootElement.EnumerateArray()
            .Where(e => e.GetProperty("has_img_twitter").GetBoolean())
            .OrderBy(e => e.GetProperty("sort_order").GetInt32())
            .Select(e => (e.GetProperty("category").GetString()!, Path.Combine(TestAssets.EmojiDirectory, e.GetProperty("image").GetString()!)))];
    });

    /// <summary><paramref name="count"/> files of <paramref name="category"/>, skipping the first <paramref name="skip"/>.</summary>
    public static IReadOnlyList<string> Files(string category, int count, int skip = 0) =>
        [.. Catalog.Value.Where(e => e.Category == category).Skip(skip).Take(count).Select(e => e.File)];
}
