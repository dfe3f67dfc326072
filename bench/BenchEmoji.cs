namespace ServerlessClassifier.Bench;

/// <summary>The benchmarks' real labelled images: Twitter emoji of nine categories, extracted from the npm package by scripts/emoji-dataset.mjs.</summary>
internal static class BenchEmoji
{
    /// <summary>Extracts up to <paramref name="perClass"/> images per category into a new temporary folder (the caller deletes it).</summary>
    public static async Task<string> ExtractAsync(string repository, int perClass = 500)
    {
        var emoji = Path.Combine(Path.GetTempPath(), $"bench-emoji-{Guid.NewGuid():N}");
        using var node = System.Diagnostics.Process.Start("node", [Path.Combine(repository, "scripts", "emoji-dataset.mjs"), emoji, "--all", "--per-class", perClass.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            ?? throw new InvalidOperationException("could not start node");
        await node.WaitForExitAsync();
        return emoji;
    }

    /// <summary>The served pair (<see cref="ServingModels"/>) trained on 270 emoji, the extracted images deleted afterwards.</summary>
    public static async Task<ServingModels> TrainServingModelsAsync(string repository)
    {
        var emoji = await ExtractAsync(repository);
        var servingRoot = TrainingBench.PrepareData(emoji, 270);
        try
        {
            return await ServingModels.TrainAsync(servingRoot);
        }
        finally
        {
            Directory.Delete(servingRoot, recursive: true);
            Directory.Delete(emoji, recursive: true);
        }
    }
}
