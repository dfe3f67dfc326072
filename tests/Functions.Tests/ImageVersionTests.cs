using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>A prediction describes one version of its image: a new upload under the same name replaces it, a deletion removes it.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class ImageVersionTests(ServingModelFixture model)
{
    [Fact]
    public async Task ReuploadUnderTheSameName_IsClassifiedAgainAndReplacesThePrediction_RedeliveriesWriteNothing()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var trigger = host.Function<ClassifyUploadedImage>();
        var handler = host.Get<UploadedImageHandler>();
        var name = await host.UploadAsync("photos/same-name.png", ServingModelFixture.Image("red", seed: 300));
        await trigger.Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
        var first = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, name);
        var firstImage = (await host.Images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag;
        Assert.Equal("red", first.Label);
        Assert.Equal(PredictionBlobs.VersionOf(firstImage), first.ImageVersion);

        await host.UploadAsync(name, ServingModelFixture.Image("blue", seed: 301));
        var secondImage = (await host.Images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag;
        Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));

        var second = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, name);
        Assert.Equal("blue", second.Label);
        Assert.Equal(PredictionBlobs.VersionOf(secondImage), second.ImageVersion);
        var stored = (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value;
        Assert.Equal(second.ImageVersion, stored.Metadata[PredictionBlobs.ImageVersionMetadata]);

        // Re-deliveries of the second version (either source) write nothing.
        Assert.Equal(PredictionOutcome.AlreadyDone, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        Assert.Equal(PredictionOutcome.AlreadyDone, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.EventGrid, CancellationToken.None));
        Assert.Equal(stored.ETag, (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value.ETag);
    }

    [Fact]
    public async Task ConcurrentDeliveriesOfANewVersion_ReplaceThePredictionExactlyOnce()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var handler = host.Get<UploadedImageHandler>();
        var name = await host.UploadAsync("race.png", ServingModelFixture.Image("green", seed: 302));
        await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None);
        await host.UploadAsync(name, ServingModelFixture.Image("red", seed: 303));

        var outcomes = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            Task.Run(() => handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None))));

        Assert.Equal(1, outcomes.Count(o => o == PredictionOutcome.Classified));
        Assert.Equal(3, outcomes.Count(o => o == PredictionOutcome.AlreadyDone));
        Assert.Equal("red", (await BlobTriggerTests.ReadPredictionAsync(host.Predictions, name)).Label);
    }

    [Fact]
    public async Task DeletedImage_ItsPredictionIsRemovedByADeliveryAndByTheSweep()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var handler = host.Get<UploadedImageHandler>();
        var names = new[] { "a.png", "a.b.png", "z.png" };
        foreach (var name in names)
        {
            await host.UploadAsync(name, ServingModelFixture.Image("red", seed: 304));
            await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None);
        }
        await host.Images.DeleteBlobAsync("a.png");
        await host.Images.DeleteBlobAsync("z.png");

        Assert.Equal(PredictionOutcome.Removed, await handler.HandleAsync(host.Images.GetBlobClient("z.png"), "z.png", PredictionSource.EventGrid, CancellationToken.None));
        var report = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);

        Assert.Equal((1, 1, 0), (report.Found, report.Removed, report.Classified));
        Assert.Equal(["a.b.png.json"], await NamesAsync(host));
    }

    [Fact]
    public async Task Sweep_ReclassifiesAnImageUploadedAgain_AndLeavesCurrentPredictionsAlone()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var handler = host.Get<UploadedImageHandler>();
        // Names whose prediction names sort in another order than the images ("a.json" > "a.b.json"): the merge must pair them.
        var names = new[] { "a", "a.b", "a-c", "b/x.png" };
        foreach (var name in names)
        {
            await host.UploadAsync(name, ServingModelFixture.Image("green", seed: 305));
            await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None);
        }
        var before = await ETagsAsync(host);
        await host.UploadAsync("a", ServingModelFixture.Image("blue", seed: 306));

        var report = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);
        var again = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);

        Assert.Equal((1, 1, 0), (report.Found, report.Classified, report.Removed));
        Assert.Equal(0, again.Found);
        var after = await ETagsAsync(host);
        Assert.NotEqual(before["a.json"], after["a.json"]);
        Assert.All(names.Skip(1), n => Assert.Equal(before[n + ".json"], after[n + ".json"]));
        var prediction = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, "a");
        Assert.Equal(("blue", PredictionSource.Sweep), (prediction.Label, prediction.Source));
    }

    [Fact]
    public async Task PredictionWithoutAnImageVersion_CountsAsCurrentUnlessTheImageIsNewer()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        await host.Predictions.CreateIfNotExistsAsync();
        await host.UploadAsync("old.png", ServingModelFixture.Image("red", seed: 307));
        const string Legacy = """{"status":"ok","image":"old.png","label":"written-before-versions"}""";
        await host.Predictions.UploadBlobAsync("old.png.json", BinaryData.FromString(Legacy));

        var report = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);
        Assert.Equal(0, report.Found);

        await Task.Delay(TimeSpan.FromSeconds(1.1)); // Last-Modified has one-second resolution
        await host.UploadAsync("old.png", ServingModelFixture.Image("red", seed: 308));
        report = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);
        Assert.Equal(1, report.Classified);
        Assert.Equal("red", (await BlobTriggerTests.ReadPredictionAsync(host.Predictions, "old.png")).Label);
    }

    private static async Task<List<string>> NamesAsync(TestHost host)
    {
        var names = new List<string>();
        await foreach (var blob in host.Predictions.GetBlobsAsync())
        {
            names.Add(blob.Name);
        }
        return names;
    }

    private static async Task<Dictionary<string, string>> ETagsAsync(TestHost host)
    {
        var etags = new Dictionary<string, string>();
        await foreach (var blob in host.Predictions.GetBlobsAsync())
        {
            etags[blob.Name] = blob.Properties.ETag!.Value.ToString();
        }
        return etags;
    }
}
