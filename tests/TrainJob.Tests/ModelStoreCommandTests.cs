using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Tests;

[Collection(TorchTests.Collection)]
public sealed class ModelStoreCommandTests(ModelFolders models) : IClassFixture<ModelFolders>
{
    private readonly Cli cli = new();

    [Fact]
    public async Task PublishListPromote_RollsBackToTheFirstVersion()
    {
        var publish1 = await cli.RunAsync("publish", "--model", models.AlwaysGamma);
        Assert.Equal(ExitCodes.Ok, publish1.ExitCode);
        var v1 = publish1.Out.Trim();
        var list1 = await cli.RunAsync("models", "list");
        Assert.Equal(ExitCodes.Ok, list1.ExitCode);
        Assert.Equal(v1, CurrentVersion(list1.Out));

        // Versions are named by the second: wait so the ids sort by time.
        await Task.Delay(1100);
        var publish2 = await cli.RunAsync("publish", "--model", models.AlwaysAlpha);
        var v2 = publish2.Out.Trim();
        Assert.NotEqual(v1, v2);
        Assert.Equal(v2, CurrentVersion((await cli.RunAsync("models", "list")).Out));
        Assert.Contains("alpha", (await cli.RunAsync("classify", "--model", "current", Emoji())).Out, StringComparison.Ordinal);

        var promote = await cli.RunAsync("models", "promote", v1);
        Assert.Equal(ExitCodes.Ok, promote.ExitCode);
        Assert.Contains($"(was {v2})", promote.Out, StringComparison.Ordinal);

        var list = await cli.RunAsync("models", "list");
        Assert.Equal(v1, CurrentVersion(list.Out));
        Assert.Contains(v2, list.Out, StringComparison.Ordinal);
        Assert.Contains("resnet18", list.Out, StringComparison.Ordinal);
        var classify = await cli.RunAsync("classify", "--model", "current", Emoji());
        Assert.Equal(ExitCodes.Ok, classify.ExitCode);
        Assert.Contains("gamma", classify.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task List_AManifestThatBreaksItsOwnChecks_IsListedWithItsProblem_AndTheOthersAreListed()
    {
        var good = (await cli.RunAsync("publish", "--model", models.AlwaysGamma)).Out.Trim();
        // "labels": null: the manifest's strict reading refuses it (a null where the schema allows none).
        var container = new BlobContainerClient(TestStorage.ConnectionString, cli.ModelsContainer);
        var manifest = JsonNode.Parse((await container.GetBlobClient($"{good}/{ModelManifest.FileName}").DownloadContentAsync()).Value.Content.ToString())!;
        manifest["labels"] = null;
        const string bad = "20000101-000000-0bad00";
        manifest["version"] = bad;
        await container.GetBlobClient($"{bad}/{ModelManifest.FileName}").UploadAsync(BinaryData.FromString(manifest.ToJsonString()));

        var list = await cli.RunAsync("models", "list");

        Assert.True(list.ExitCode == ExitCodes.Ok, list.All);
        Assert.Equal(good, CurrentVersion(list.Out));
        Assert.Contains("resnet18", Assert.Single(list.Out.Split('\n'), l => l.Contains(good, StringComparison.Ordinal)), StringComparison.Ordinal);
        Assert.Single(list.Out.Split('\n'), l => l.Contains(bad + " ", StringComparison.Ordinal));
        Assert.Contains($"{bad}/manifest.json: manifest does not match schema 1", list.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClassifyByVersion_PrintsTheLabels()
    {
        var version = (await cli.RunAsync("publish", "--model", models.AlwaysGamma)).Out.Trim();

        var run = await cli.RunAsync("classify", "--model", version, "--top", "2", Emoji(), Emoji(1));

        Assert.Equal(ExitCodes.Ok, run.ExitCode);
        Assert.Equal(2, run.Out.Split('\n').Count(l => l.Contains("gamma 0.9", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task Promote_UnknownVersion_FailsInOneLine()
    {
        var run = await cli.RunAsync("models", "promote", "20000101-000000-abcdef");

        Assert.Equal(ExitCodes.Failure, run.ExitCode);
        Assert.Contains("20000101-000000-abcdef", run.Err, StringComparison.Ordinal);
        Assert.Single(run.Err.Trim().Split('\n'));
    }

    [Fact]
    public async Task NamedModel_PublishListShowPromoteRollback_LeavesTheDefaultAlone()
    {
        var defaultVersion = (await cli.RunAsync("publish", "--model", models.AlwaysGamma)).Out.Trim();
        var publish1 = await cli.RunAsync("publish", "--model", models.AlwaysAlpha, "--name", "cats");
        Assert.True(publish1.ExitCode == ExitCodes.Ok, publish1.All);
        var v1 = publish1.Out.Trim();
        await Task.Delay(1100);
        var v2 = (await cli.RunAsync("publish", "--model", models.AlwaysGamma, "--name", "cats")).Out.Trim();

        var list = await cli.RunAsync("models", "list", "--model", "cats");
        Assert.Equal(v2, CurrentVersion(list.Out));
        Assert.Contains(v1, list.Out, StringComparison.Ordinal);
        Assert.DoesNotContain(defaultVersion, list.Out, StringComparison.Ordinal);
        Assert.Contains("Other models in this store: default", list.Out, StringComparison.Ordinal);
        var defaultList = await cli.RunAsync("models", "list");
        Assert.Equal(defaultVersion, CurrentVersion(defaultList.Out));
        Assert.Contains("Other models in this store: cats", defaultList.Out, StringComparison.Ordinal);

        var rollback = await cli.RunAsync("models", "rollback", "--model", "cats");
        Assert.True(rollback.ExitCode == ExitCodes.Ok, rollback.All);
        Assert.Contains($"cats {v1} (was {v2})", rollback.Out, StringComparison.Ordinal);
        var show = await cli.RunAsync("models", "show", "--model", "cats");
        Assert.Contains($"version:    {v1} (current)", show.Out, StringComparison.Ordinal);
        Assert.Contains("alpha", show.Out, StringComparison.Ordinal);
        var promote = await cli.RunAsync("models", "promote", v2, "--model", "cats");
        Assert.Contains($"cats {v2} (was {v1})", promote.Out, StringComparison.Ordinal);
        Assert.Equal(defaultVersion, CurrentVersion((await cli.RunAsync("models", "list")).Out));

        var bad = await cli.RunAsync("models", "list", "--model", "Cats/1");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);
        Assert.Contains("--model: Model name \"Cats/1\" must start with a lowercase letter", bad.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Canary_PromoteWithTraffic_ListShowsItsShare_RollbackEndsIt()
    {
        var v1 = (await cli.RunAsync("publish", "--model", models.AlwaysGamma, "--name", "birds")).Out.Trim();
        await Task.Delay(1100);
        var v2 = (await cli.RunAsync("publish", "--model", models.AlwaysAlpha, "--name", "birds")).Out.Trim();
        await cli.RunAsync("models", "promote", v1, "--model", "birds");

        var canary = await cli.RunAsync("models", "promote", v2, "--model", "birds", "--traffic", "10");
        Assert.True(canary.ExitCode == ExitCodes.Ok, canary.All);
        Assert.Contains($"Canary: birds {v2} serves 10 % of the images; {v1} the rest", canary.Out, StringComparison.Ordinal);
        var list = await cli.RunAsync("models", "list", "--model", "birds");
        Assert.Equal(v1, CurrentVersion(list.Out));
        Assert.Contains("10%", Assert.Single(list.Out.Split('\n'), l => l.Contains(v2, StringComparison.Ordinal)), StringComparison.Ordinal);

        var rollback = await cli.RunAsync("models", "rollback", "--model", "birds");
        Assert.Contains($"birds {v1} serves all images again (the canary {v2} ended)", rollback.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("10%", (await cli.RunAsync("models", "list", "--model", "birds")).Out, StringComparison.Ordinal);

        var bad = await cli.RunAsync("models", "promote", v2, "--model", "birds", "--traffic", "0");
        Assert.Equal(ExitCodes.Usage, bad.ExitCode);
        Assert.Contains("--traffic 0", bad.Err, StringComparison.Ordinal);
    }

    private static string Emoji(int index = 0) => TestAssets.SampleEmoji(4)[index];

    /// <summary>The version on the row marked current in the models list table.</summary>
    private static string CurrentVersion(string table)
    {
        var row = Assert.Single(table.Split('\n'), l => l.Contains("│ *", StringComparison.Ordinal) || l.TrimStart().StartsWith("* ", StringComparison.Ordinal) || l.Contains("| *", StringComparison.Ordinal));
        return row.Split(['│', '|', ' '], StringSplitOptions.RemoveEmptyEntries)[1];
    }
}
