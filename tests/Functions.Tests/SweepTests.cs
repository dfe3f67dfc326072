using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Tests;

[Collection(FunctionsTests.Collection)]
public sealed class SweepTests(ServingModelFixture model)
{
    [Fact]
    public async Task Sweep_ClassifiesOnlyImagesWithoutAPrediction_AtMostThePerRunBound()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:SweepMaxImagesPerRun"] = "2" }, await model.SharedModelsAsync());
        var names = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            names.Add(await host.UploadAsync($"img-{i}.png", ServingModelFixture.Image(ServingModelFixture.Labels[i % 3], seed: 70 + i)));
        }
        // Two already have predictions (from the trigger).
        var trigger = host.Function<ClassifyUploadedImage>();
        await trigger.Run(host.Images.GetBlobClient(names[0]), names[0], CancellationToken.None);
        await trigger.Run(host.Images.GetBlobClient(names[3]), names[3], CancellationToken.None);
        var untouched = (await host.Predictions.GetBlobClient(names[0] + ".json").GetPropertiesAsync()).Value.ETag;

        var sweeper = host.Get<UnclassifiedImageSweeper>();
        var first = await sweeper.SweepAsync(CancellationToken.None);
        var second = await sweeper.SweepAsync(CancellationToken.None);
        var third = await sweeper.SweepAsync(CancellationToken.None);

        Assert.Equal((2, 2, true), (first.Found, first.Classified, first.LimitReached));
        Assert.Equal((1, 1, false), (second.Found, second.Classified, second.LimitReached));
        Assert.Equal(0, third.Found);
        Assert.Equal(untouched, (await host.Predictions.GetBlobClient(names[0] + ".json").GetPropertiesAsync()).Value.ETag);
        for (var i = 0; i < 5; i++)
        {
            var prediction = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, names[i]);
            Assert.Equal(ServingModelFixture.Labels[i % 3], prediction.Label);
            Assert.Equal(i is 0 or 3 ? PredictionSource.BlobTrigger : PredictionSource.Sweep, prediction.Source);
        }
    }

    [Fact]
    public async Task ImageUploadedBeforeAnyModel_IsClassifiedByTheSweepOnceOneIsPublished()
    {
        await using var host = await TestHost.StartAsync();
        var name = await host.UploadAsync("early.png", ServingModelFixture.Image("green", seed: 80));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
        Assert.Equal(0, (await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None)).Found);

        await host.Store.PublishAsync(model.Folder, version: "v1");
        var report = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);

        Assert.Equal(1, report.Classified);
        Assert.Equal("green", (await BlobTriggerTests.ReadPredictionAsync(host.Predictions, name)).Label);
    }
}
