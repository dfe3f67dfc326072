using System.Text.Json;
using Azure.Storage.Blobs;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

[Collection(FunctionsTests.Collection)]
public sealed class BlobTriggerTests(ServingModelFixture model)
{
    [Fact]
    public async Task UploadedImage_GetsAPredictionWithTheRightLabel()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var function = host.Function<ClassifyUploadedImage>();
        foreach (var label in ServingModelFixture.Labels)
        {
            var name = await host.UploadAsync($"photos/{label}.png", ServingModelFixture.Image(label, seed: 7));
            await function.Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

            var prediction = await ReadPredictionAsync(host.Predictions, name);
            Assert.Equal(PredictionStatus.Ok, prediction.Status);
            Assert.Equal(label, prediction.Label);
            Assert.Equal("v1", prediction.ModelVersion);
            Assert.Equal(name, prediction.Image);
            Assert.Equal(PredictionSource.BlobTrigger, prediction.Source);
            Assert.Equal(3, prediction.Top!.Count);
            Assert.Equal(label, prediction.Top[0].Label);
            Assert.NotNull(prediction.Timings);
            Assert.Null(prediction.Error);
        }
    }

    [Fact]
    public async Task EventGridEntry_UsesTheSameHandler()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var name = await host.UploadAsync("blue.png", ServingModelFixture.Image("blue", seed: 8));
        await host.Function<ClassifyUploadedImage>().RunFromEventGrid(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var prediction = await ReadPredictionAsync(host.Predictions, name);
        Assert.Equal("blue", prediction.Label);
        Assert.Equal(PredictionSource.EventGrid, prediction.Source);
    }

    [Fact]
    public async Task Redelivery_WritesNothingNew()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var handler = host.Get<UploadedImageHandler>();
        var name = await host.UploadAsync("green.png", ServingModelFixture.Image("green", seed: 9));
        Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        var first = (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value;

        Assert.Equal(PredictionOutcome.AlreadyDone, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        Assert.Equal(PredictionOutcome.AlreadyDone, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.EventGrid, CancellationToken.None));

        var after = (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value;
        Assert.Equal(first.ETag, after.ETag);
    }

    [Fact]
    public async Task ConcurrentDeliveries_WriteExactlyOnePrediction()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var handler = host.Get<UploadedImageHandler>();
        var name = await host.UploadAsync("red.png", ServingModelFixture.Image("red", seed: 10));
        var outcomes = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            Task.Run(() => handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None))));
        Assert.Equal(1, outcomes.Count(o => o == PredictionOutcome.Classified));
        Assert.Equal(3, outcomes.Count(o => o == PredictionOutcome.AlreadyDone));
    }

    [Theory]
    [InlineData("truncated.png", "Corrupt")]
    [InlineData("notes.txt", "UnsupportedFormat")]
    [InlineData("empty.png", "Empty")]
    public async Task BadUpload_IsRejectedWithItsCodeAndTheFunctionReturnsNormally(string name, string code)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var png = ServingModelFixture.Image("red", seed: 11);
        byte[] content = code switch
        {
            "Corrupt" => png[..(png.Length / 2)],
            "UnsupportedFormat" => "just some text, not an image"u8.ToArray(),
            _ => [],
        };
        await host.UploadAsync(name, content);
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var prediction = await ReadPredictionAsync(host.Predictions, name);
        Assert.Equal(PredictionStatus.Rejected, prediction.Status);
        Assert.Equal(code, prediction.Error!.Code);
        Assert.False(string.IsNullOrWhiteSpace(prediction.Error.Message));
        Assert.Equal("v1", prediction.ModelVersion);
        Assert.Null(prediction.Label);
    }

    [Fact]
    public async Task BlobOverTheByteLimit_IsRejectedAsTooLarge()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MaxBytes"] = "1000" }, await model.SharedModelsAsync());
        var name = await host.UploadAsync("big.png", ServingModelFixture.Image("red", seed: 12));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var prediction = await ReadPredictionAsync(host.Predictions, name);
        Assert.Equal("TooLarge", prediction.Error!.Code);
        Assert.Contains("over the limit of 1000", prediction.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutAModel_NothingIsWrittenAndNothingThrows()
    {
        await using var host = await TestHost.StartAsync();
        var name = await host.UploadAsync("early.png", ServingModelFixture.Image("red", seed: 13));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        Assert.False((await host.Predictions.GetBlobClient(name + ".json").ExistsAsync()).Value);
    }

    [Fact]
    public async Task DeletedBeforeItWasRead_IsIgnored()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var outcome = await host.Get<UploadedImageHandler>().HandleAsync(host.Images.GetBlobClient("gone.png"), "gone.png", PredictionSource.BlobTrigger, CancellationToken.None);
        Assert.Equal(PredictionOutcome.ImageGone, outcome);
    }

    internal static async Task<PredictionDocument> ReadPredictionAsync(BlobContainerClient predictions, string image)
    {
        var content = await predictions.GetBlobClient(image + ".json").DownloadContentAsync();
        Assert.Equal("application/json", content.Value.Details.ContentType);
        // The stored JSON uses exactly the contract's camelCase names.
        using var document = JsonDocument.Parse(content.Value.Content.ToMemory());
        Assert.True(document.RootElement.TryGetProperty("status", out _));
        Assert.True(document.RootElement.TryGetProperty("classifiedUtc", out _));
        Assert.True(document.RootElement.TryGetProperty("modelVersion", out _));
        return content.Value.Content.ToObjectFromJson<PredictionDocument>(PredictionDocument.JsonOptions)!;
    }
}
