using System.Text.Json;
using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Tests;

[Collection(TorchTests.Collection)]
public sealed class ClassifyCommandTests(ModelFolders models) : IClassFixture<ModelFolders>, IDisposable
{
    private readonly Cli cli = new();
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Classify_ReportsACorruptFileWithItsCodeAndClassifiesTheOthers()
    {
        var emoji = TestAssets.SampleEmoji(2);
        var corrupt = temp.Combine("broken.png");
        await File.WriteAllBytesAsync(corrupt, [.. File.ReadAllBytes(emoji[0]).Take(60)]);

        var run = await cli.RunAsync("classify", "--model", models.AlwaysGamma, emoji[0], corrupt, emoji[1]);

        Assert.Equal(ExitCodes.SomeInputsRejected, run.ExitCode);
        var rows = run.Out.Split('\n');
        Assert.Contains(rows, r => r.Contains("broken.png", StringComparison.Ordinal) && r.Contains("Corrupt", StringComparison.Ordinal));
        Assert.Equal(2, rows.Count(r => r.Contains("gamma", StringComparison.Ordinal)));
        Assert.Contains("1 of 3", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ClassifyJson_PrintsOnePredictionDocumentPerInput()
    {
        var emoji = TestAssets.SampleEmoji(1)[0];
        var missing = temp.Combine("missing.jpg");

        var run = await cli.RunAsync("classify", "--model", models.AlwaysGamma, "--json", emoji, missing);

        Assert.Equal(ExitCodes.SomeInputsRejected, run.ExitCode);
        var documents = run.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => PredictionDocument.Parse(System.Text.Encoding.UTF8.GetBytes(l))).ToList();
        Assert.Equal(2, documents.Count);
        Assert.Equal(PredictionStatus.Ok, documents[0].Status);
        Assert.Equal("gamma", documents[0].Label);
        Assert.Equal(TestModels.WinnerProbability(3), documents[0].Confidence!.Value, 4);
        Assert.Equal(PredictionStatus.Rejected, documents[1].Status);
        Assert.Equal("NotFound", documents[1].Error!.Code);
    }

    [Fact]
    public async Task ClassifyContainer_BackfillsOnlyImagesWithoutPredictionsAndIsIdempotent()
    {
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        var predictions = service.GetBlobContainerClient(cli.PredictionsContainer);
        await images.CreateAsync();
        await predictions.CreateAsync();
        var emoji = TestAssets.SampleEmoji(3);
        await images.UploadBlobAsync("a.png", BinaryData.FromBytes(File.ReadAllBytes(emoji[0])));
        await images.UploadBlobAsync("folder/b.png", BinaryData.FromBytes(File.ReadAllBytes(emoji[1])));
        await images.UploadBlobAsync("done.png", BinaryData.FromBytes(File.ReadAllBytes(emoji[2])));
        await images.UploadBlobAsync("notes.txt", BinaryData.FromString("not an image"));
        const string Existing = """{"status":"ok","image":"done.png","label":"written-by-the-function"}""";
        await predictions.UploadBlobAsync("done.png.json", BinaryData.FromString(Existing));

        var first = await cli.RunAsync("classify", "--model", models.AlwaysGamma, "--container");

        Assert.True(first.ExitCode == ExitCodes.Ok, first.All);
        Assert.Contains("Wrote 3 predictions", first.Out, StringComparison.Ordinal);
        var a = await Read(predictions, "a.png.json");
        Assert.Equal(PredictionStatus.Ok, a.Status);
        Assert.Equal("a.png", a.Image);
        Assert.Equal("gamma", a.Label);
        Assert.Equal(PredictionSource.Backfill, a.Source);
        Assert.Equal(3, a.Top!.Count);
        Assert.Equal("gamma", (await Read(predictions, "folder/b.png.json")).Label);
        var text = await Read(predictions, "notes.txt.json");
        Assert.Equal(PredictionStatus.Rejected, text.Status);
        Assert.Equal("UnsupportedFormat", text.Error!.Code);
        Assert.Equal(Existing, (await predictions.GetBlobClient("done.png.json").DownloadContentAsync()).Value.Content.ToString());
        var etags = await ETags(predictions);

        var second = await cli.RunAsync("classify", "--model", models.AlwaysGamma, "--container", cli.ImagesContainer);

        Assert.Equal(ExitCodes.Ok, second.ExitCode);
        Assert.Contains("Wrote 0 predictions", second.Out, StringComparison.Ordinal);
        Assert.Equal(etags, await ETags(predictions));
    }

    [Fact]
    public async Task ClassifyContainer_WithTheLiveModels_RoutesEachImageAsTheAppDoes_NamedModelsAndACanaryIncluded()
    {
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        var predictions = service.GetBlobContainerClient(cli.PredictionsContainer);
        await images.CreateAsync();
        var emoji = File.ReadAllBytes(TestAssets.SampleEmoji(1)[0]);
        string[] catImages = [.. Enumerable.Range(0, 12).Select(i => $"cats/{i}.png")];
        foreach (var name in (string[])["a.png", "dogs/b.png", .. catImages])
        {
            await images.UploadBlobAsync(name, BinaryData.FromBytes(emoji));
        }
        var defaultVersion = (await cli.RunAsync("publish", "--model", models.AlwaysGamma)).Out.Trim();
        var cats = (await cli.RunAsync("publish", "--model", models.AlwaysAlpha, "--name", "cats")).Out.Trim();
        await Task.Delay(1100);
        var canary = (await cli.RunAsync("publish", "--model", models.AlwaysGamma, "--name", "cats")).Out.Trim();
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("models", "promote", cats, "--model", "cats")).ExitCode);
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("models", "promote", canary, "--model", "cats", "--traffic", "50")).ExitCode);

        // One given model classifies the default model's images and leaves the named model's to the app.
        var given = await cli.RunAsync("classify", "--model", defaultVersion, "--container");
        Assert.True(given.ExitCode == ExitCodes.Ok, given.All);
        Assert.Contains("Wrote 2 predictions", given.Out, StringComparison.Ordinal);
        Assert.Contains("12 images under a named model's folder (cats) were left to that model", given.Out, StringComparison.Ordinal);
        Assert.False((await predictions.GetBlobClient("cats/0.png.json").ExistsAsync()).Value);

        // The live models (the default): each of cats' images gets cats' current version or its canary, by its name's bucket.
        var live = await cli.RunAsync("classify", "--container");

        Assert.True(live.ExitCode == ExitCodes.Ok, live.All);
        var toCanary = catImages.Count(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), new CanaryRelease(canary, 50)));
        Assert.InRange(toCanary, 1, 11); // both versions are exercised by these names
        Assert.Contains($"Wrote 12 predictions to '{cli.PredictionsContainer}' (12 ok, 0 rejected) with the live models: cats version {cats} ({12 - toCanary}), " +
            $"canary {canary} at 50 % ({toCanary}); default version {defaultVersion} (0)", live.Out, StringComparison.Ordinal);
        foreach (var name in catImages)
        {
            var prediction = await Read(predictions, name + ".json");
            var expected = CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(name), new CanaryRelease(canary, 50)) ? (canary, "gamma") : (cats, "alpha");
            Assert.Equal(("cats", expected), (prediction.Model, (prediction.ModelVersion!, prediction.Label!)));
            Assert.Equal(PredictionSource.Backfill, prediction.Source);
        }
        var dogs = await Read(predictions, "dogs/b.png.json"); // not a model's name: the default model's
        Assert.Equal((null, defaultVersion, "gamma"), (dogs.Model, dogs.ModelVersion, dogs.Label));
    }

    [Fact]
    public async Task ClassifyDistributed_QueuesShardsOfOnlyTheMissingWork_AndJobsShowThem()
    {
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        var predictions = service.GetBlobContainerClient(cli.PredictionsContainer);
        await images.CreateAsync();
        await predictions.CreateAsync();
        var emoji = TestAssets.SampleEmoji(1)[0];
        for (var i = 0; i < 7; i++)
        {
            await images.UploadBlobAsync($"{i}.png", BinaryData.FromBytes(File.ReadAllBytes(emoji)));
        }

        var noModel = await cli.RunAsync("classify", "--container", "--distributed");
        Assert.Equal(ExitCodes.Failure, noModel.ExitCode);
        Assert.Contains("No model is live", noModel.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("publish", "--model", models.AlwaysGamma)).ExitCode);
        // One image has a current prediction (the backfill wrote it): the job leaves it out.
        Assert.Equal(ExitCodes.Ok, (await cli.RunAsync("classify", "--container")).ExitCode);
        await images.GetBlobClient("0.png").DeleteAsync();
        for (var i = 1; i < 7; i++)
        {
            await images.GetBlobClient($"{i}.png").UploadAsync(BinaryData.FromBytes(File.ReadAllBytes(emoji)), overwrite: true); // a new version
        }
        await images.UploadBlobAsync("new.png", BinaryData.FromBytes(File.ReadAllBytes(emoji)));

        var run = await cli.RunAsync("classify", "--container", "--distributed", "--shard-size", "3");

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        var id = Regex.Match(run.Out, @"Job (\S+): 8 items .* in 3 shards of at most 3 on the queue").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(id), run.Out);
        Assert.Contains($"trainjob jobs status {id}", run.Out, StringComparison.Ordinal);
        var queue = new QueueClient(TestStorage.ConnectionString, cli.ShardQueue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 });
        var messages = (await queue.PeekMessagesAsync(maxMessages: 32)).Value;
        Assert.Equal([0, 1, 2], messages.Select(m => ShardMessage.Parse(m.MessageText)).Select(m => m.Shard).Order());
        Assert.All(messages, m => Assert.Equal(id, ShardMessage.Parse(m.MessageText).Job));
        var jobs = new JobStore(service.GetBlobContainerClient(cli.JobsContainer));
        var shards = new List<ShardItem>();
        for (var shard = 0; shard < 3; shard++)
        {
            shards.AddRange((await jobs.ReadShardAsync(new ShardMessage(id, shard)))!.Items);
        }
        // 6 new versions, 1 new image, 1 prediction of a deleted image; in name order.
        Assert.Equal(["0.png", "1.png", "2.png", "3.png", "4.png", "5.png", "6.png", "new.png"], shards.Select(s => s.Name));
        Assert.False(shards[0].ImageExists);

        var status = await cli.RunAsync("jobs", "status", id);
        Assert.True(status.ExitCode == ExitCodes.Ok, status.All);
        Assert.Contains("running", status.Out, StringComparison.Ordinal);
        Assert.Contains("Shards: 0 of 3 done, 0 parked, 3 waiting or running.", status.Out, StringComparison.Ordinal);
        var list = await cli.RunAsync("jobs", "list");
        Assert.Contains(id, list.Out, StringComparison.Ordinal);

        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("classify", "--distributed", "x.png")).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("classify", "--container", "--distributed", "--model", models.AlwaysGamma)).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("classify", "--container", "--wait")).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("classify", "--container", "--distributed", "--shard-size", "0")).ExitCode);
        Assert.Equal(ExitCodes.Usage, (await cli.RunAsync("jobs", "status", "../models")).ExitCode);
        var unknown = await cli.RunAsync("jobs", "status", "20200101-000000-abcdef");
        Assert.Equal(ExitCodes.Failure, unknown.ExitCode);
        Assert.Contains("There is no job 20200101-000000-abcdef", unknown.Err, StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();

    private static async Task<PredictionDocument> Read(BlobContainerClient container, string name) =>
        PredictionDocument.Parse((await container.GetBlobClient(name).DownloadContentAsync()).Value.Content.ToMemory().Span);

    private static async Task<Dictionary<string, string>> ETags(BlobContainerClient container)
    {
        var result = new Dictionary<string, string>();
        await foreach (var blob in container.GetBlobsAsync())
        {
            result[blob.Name] = blob.Properties.ETag!.Value.ToString();
        }
        return result;
    }
}

public sealed class PredictionDocumentTests
{
    [Fact]
    public void Json_UsesTheSharedCamelCaseShapeAndOmitsNulls()
    {
        var classification = new Classification("cat", 0.9, false, 0.5, [new LabelProbability("cat", 0.9), new LabelProbability("dog", 0.1)], new ClassificationTimings(1, 2, 3));

        using var json = JsonDocument.Parse(PredictionDocument.FromClassification("x.jpg", classification, "v1", PredictionSource.BlobTrigger).ToJson());

        var root = json.RootElement;
        Assert.Equal("ok", root.GetProperty("status").GetString());
        Assert.Equal("x.jpg", root.GetProperty("image").GetString());
        Assert.Equal("v1", root.GetProperty("modelVersion").GetString());
        Assert.Equal("dog", root.GetProperty("top")[1].GetProperty("label").GetString());
        Assert.Equal(3, root.GetProperty("timings").GetProperty("inferenceMs").GetDouble());
        Assert.Equal("blobTrigger", root.GetProperty("source").GetString());
        Assert.False(root.TryGetProperty("error", out _));
    }
}
