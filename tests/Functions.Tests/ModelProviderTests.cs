using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using Xunit.Abstractions;

namespace ServerlessClassifier.Functions.Tests;

[Collection(FunctionsTests.Collection)]
public sealed class ModelProviderTests(ServingModelFixture model, ITestOutputHelper output)
{
    [Fact]
    public async Task ConcurrentFirstRequests_LoadTheModelOnce()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var provider = host.ModelProvider;
        var leases = await Task.WhenAll(Enumerable.Range(0, 16).Select(_ => Task.Run(() => provider.AcquireAsync())));

        Assert.Equal(1, provider.LoadCount);
        Assert.Single(leases.Select(l => l.Model).Distinct());
        foreach (var lease in leases)
        {
            lease.Dispose();
        }
    }

    [Fact]
    public async Task PublishingV2_WhileRequestsRun_FailsNoneAndLaterAnswersComeFromV2()
    {
        // Refresh interval 0: every request may start a background check, so swaps happen under load.
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:ModelRefreshInterval"] = "00:00:00" });
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var function = host.Function<ClassifyImage>();
        var red = ServingModelFixture.Image("red", seed: 31);
        Assert.Equal("v1", (await ClassifyAsync(function, red)).ModelVersion);
        var v1 = host.ModelProvider.Current!;

        using var stop = new CancellationTokenSource();
        var versions = new System.Collections.Concurrent.ConcurrentBag<string>();
        var clients = Enumerable.Range(0, 24).Select(_ => Task.Run(async () =>
        {
            // Every client keeps going until it has made two requests after the swap.
            var afterSwap = 0;
            while (!stop.IsCancellationRequested || afterSwap < 2)
            {
                var swapped = stop.IsCancellationRequested;
                var prediction = await ClassifyAsync(function, red);
                // v2 has the same weights with the labels reversed: red is "blue" there.
                Assert.Equal(prediction.ModelVersion == "v1" ? "red" : "blue", prediction.Label);
                versions.Add(prediction.ModelVersion!);
                afterSwap += swapped ? 1 : 0;
            }
        })).ToList();

        await host.Store.PublishAsync(model.ReversedFolder, version: "v2");
        await host.ModelProvider.RefreshAsync();
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        output.WriteLine($"{versions.Count} requests during the swap: {versions.Count(v => v == "v1")} by v1, {versions.Count(v => v == "v2")} by v2");
        Assert.Contains("v1", versions);
        Assert.True(versions.Count(v => v == "v2") >= 48);
        var after = await ClassifyAsync(function, red);
        Assert.Equal("v2", after.ModelVersion);
        Assert.Equal("blue", after.Label);
        // The old pipeline was released by its last user, not before.
        Assert.True(v1.IsDisposed);
        Assert.Equal(2, host.ModelProvider.LoadCount);
    }

    [Fact]
    public async Task TamperedVersion_IsRefusedOnceAndTheOldOneStaysLive()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var provider = host.ModelProvider;
        Assert.Equal("v1", (await provider.RefreshAsync())!.Version);

        await host.Store.PublishAsync(model.ReversedFolder, version: "v2");
        // Tamper after publishing (publish verifies before moving the pointer): flip one byte of the ONNX graph.
        var onnx = host.Models.GetBlobClient($"v2/{ColourModel.OnnxFileName}");
        var bytes = (await onnx.DownloadContentAsync()).Value.Content.ToArray();
        bytes[bytes.Length / 2] ^= 0x20;
        await onnx.UploadAsync(BinaryData.FromBytes(bytes), overwrite: true);

        Assert.Equal("v1", (await provider.RefreshAsync())!.Version);
        Assert.Equal("v1", (await provider.RefreshAsync())!.Version);
        Assert.Equal(1, provider.RefusedCount);
        Assert.Equal(1, provider.LoadCount);
        var prediction = await ClassifyAsync(host.Function<ClassifyImage>(), ServingModelFixture.Image("red", seed: 32));
        Assert.Equal(("v1", "red"), (prediction.ModelVersion, prediction.Label));

        // A good version published after the bad one goes live.
        await host.Store.PublishAsync(model.ReversedFolder, version: "v3");
        Assert.Equal("v3", (await provider.RefreshAsync())!.Version);
    }

    [Fact]
    public async Task TamperedFirstVersion_Is503WithTheReason()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        // Serving reads the ONNX graph (not the training weights): tamper with that.
        var graph = host.Models.GetBlobClient($"v1/{ColourModel.OnnxFileName}");
        await graph.UploadAsync(BinaryData.FromString("not the graph"), overwrite: true);

        var error = await Assert.ThrowsAsync<ModelUnavailableException>(() => host.ModelProvider.AcquireAsync());
        Assert.Contains("v1 was refused", error.Message, StringComparison.Ordinal);
    }

    private static async Task<PredictionDocument> ClassifyAsync(ClassifyImage function, byte[] image)
    {
        var result = await function.Run(TestHost.HttpContext(image).Request, CancellationToken.None);
        return Assert.IsType<PredictionDocument>(Assert.IsType<OkObjectResult>(result).Value);
    }
}
