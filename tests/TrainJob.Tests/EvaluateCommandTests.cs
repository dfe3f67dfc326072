using System.Text.Json;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Tests;

[Collection(TorchTests.Collection)]
public sealed class EvaluateCommandTests(ModelFolders models) : IClassFixture<ModelFolders>, IDisposable
{
    private readonly Cli cli = new();
    private readonly TempFolder temp = new();

    [Fact]
    public async Task EvaluateJson_WritesAccuracyPerClassAndConfusionOfAKnownModel()
    {
        // alpha: 2 images, beta: 3 (+1 corrupt, skipped), gamma: 1; the model always answers gamma.
        var emoji = TestAssets.SampleEmoji(6);
        Place("alpha", emoji[0], emoji[1]);
        Place("beta", emoji[2], emoji[3], emoji[4]);
        Place("gamma", emoji[5]);
        await File.WriteAllBytesAsync(temp.Combine("data", "beta", "corrupt.png"), [.. File.ReadAllBytes(emoji[0]).Take(60)]);
        var jsonFile = temp.Combine("eval.json");

        var run = await cli.RunAsync("evaluate", "--model", models.AlwaysGamma, "--data", temp.Combine("data"), "--json", jsonFile);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("accuracy 16.67%", run.Out, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(jsonFile));
        var root = json.RootElement;
        Assert.Equal(1.0 / 6, root.GetProperty("accuracy").GetDouble(), 9);
        Assert.Equal(6, root.GetProperty("samples").GetInt32());
        int[][] expected = [[0, 0, 2], [0, 0, 3], [0, 0, 1]];
        Assert.Equal(expected, root.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Select(c => c.GetInt32()).ToArray()).ToArray());
        var gamma = root.GetProperty("perClass").GetProperty("gamma");
        Assert.Equal(1.0 / 6, gamma.GetProperty("precision").GetDouble(), 9);
        Assert.Equal(1.0, gamma.GetProperty("recall").GetDouble(), 9);
        Assert.Equal(2 * (1.0 / 6) / (1.0 / 6 + 1), gamma.GetProperty("f1").GetDouble(), 9);
        Assert.Equal(3, root.GetProperty("perClass").GetProperty("beta").GetProperty("support").GetInt32());
        Assert.Equal(0, root.GetProperty("perClass").GetProperty("alpha").GetProperty("recall").GetDouble());
        var skipped = Assert.Single(root.GetProperty("skipped").EnumerateArray());
        Assert.Contains("Corrupt", skipped.GetProperty("reason").GetString(), StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();

    private void Place(string label, params string[] files)
    {
        Directory.CreateDirectory(temp.Combine("data", label));
        foreach (var file in files)
        {
            File.Copy(file, temp.Combine("data", label, Path.GetFileName(file)));
        }
    }
}
