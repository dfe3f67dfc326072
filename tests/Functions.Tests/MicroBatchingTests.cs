using ServerlessClassifier.Functions.Services;
using Xunit.Abstractions;

namespace ServerlessClassifier.Functions.Tests;

[Collection(FunctionsTests.Collection)]
public sealed class MicroBatchingTests(ServingModelFixture model, ITestOutputHelper output)
{
    private const int Requests = 16;

    [Fact]
    public async Task ConcurrentClassifications_ShareForwardPassesAndMatchUnbatchedResults()
    {
        var images = Enumerable.Range(0, Requests).Select(i => ServingModelFixture.Image(ServingModelFixture.Labels[i % 3], seed: 40 + i)).ToList();
        var models = await model.SharedModelsAsync();

        // A generous wait so that the test does not depend on how fast this (shared) machine decodes.
        await using var batched = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MicroBatching:MaxWaitMilliseconds"] = "200" }, models);
        await using var unbatched = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MicroBatching:Enabled"] = "false" }, models);
        await batched.ModelProvider.RefreshAsync();
        await unbatched.ModelProvider.RefreshAsync();

        var service = batched.Get<ClassificationService>();
        var together = await Task.WhenAll(images.Select(image => Task.Run(() => service.ClassifyAsync(image, top: 3, threshold: null, CancellationToken.None))));
        var alone = new List<VersionedClassification>();
        foreach (var image in images)
        {
            alone.Add(await unbatched.Get<ClassificationService>().ClassifyAsync(image, top: 3, threshold: null, CancellationToken.None));
        }

        var batcher = batched.Get<ClassificationBatcher>();
        output.WriteLine($"{Requests} concurrent requests: {batcher.Batches} forward passes, largest batch {batcher.LargestBatch}");
        Assert.True(batcher.Batches < Requests, $"{batcher.Batches} forward passes for {Requests} requests");
        Assert.Equal(Requests, batcher.Images);
        Assert.Equal(Requests, unbatched.Get<ClassificationBatcher>().Batches);
        for (var i = 0; i < Requests; i++)
        {
            var (a, b) = (together[i].Classification, alone[i].Classification);
            Assert.Equal(ServingModelFixture.Labels[i % 3], a.Label);
            Assert.Equal(b.Label, a.Label);
            Assert.Equal(b.Top.Select(t => t.Label), a.Top.Select(t => t.Label));
            // One forward pass over a batch and one per image may differ in the last float bits (GEMM blocking).
            Assert.All(a.Top.Zip(b.Top), pair => Assert.Equal(pair.Second.Probability, pair.First.Probability, 1e-5));
        }
    }

    [Fact]
    public async Task DefaultNoWait_StillSharesForwardPassesUnderConcurrency()
    {
        // The default batches only what queued up while the previous pass ran: under concurrent load
        // requests still share passes, and a lone request never waits.
        var images = Enumerable.Range(0, Requests).Select(i => ServingModelFixture.Image(ServingModelFixture.Labels[i % 3], seed: 70 + i)).ToList();
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        await host.ModelProvider.RefreshAsync();
        var service = host.Get<ClassificationService>();

        var results = await Task.WhenAll(images.Select(image => Task.Run(() => service.ClassifyAsync(image, top: 1, threshold: null, CancellationToken.None))));

        var batcher = host.Get<ClassificationBatcher>();
        output.WriteLine($"{Requests} concurrent requests without waiting: {batcher.Batches} forward passes, largest batch {batcher.LargestBatch}");
        Assert.Equal(Requests, batcher.Images);
        Assert.True(batcher.Batches < Requests, $"{batcher.Batches} forward passes for {Requests} requests");
        Assert.Equal(images.Select((_, i) => ServingModelFixture.Labels[i % 3]), results.Select(r => r.Classification.Label));
    }

    [Fact]
    public async Task BadImageInABatch_FailsOnlyItsOwnRequest()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MicroBatching:MaxWaitMilliseconds"] = "100" }, await model.SharedModelsAsync());
        var service = host.Get<ClassificationService>();
        var good = Enumerable.Range(0, 4).Select(i => Task.Run(() => service.ClassifyAsync(ServingModelFixture.Image("blue", seed: 60 + i), null, null, CancellationToken.None))).ToList();
        var bad = Task.Run(() => service.ClassifyAsync("not an image"u8.ToArray(), null, null, CancellationToken.None));

        await Assert.ThrowsAsync<ModelCore.Imaging.ImageRejectedException>(() => bad);
        Assert.All(await Task.WhenAll(good), r => Assert.Equal("blue", r.Classification.Label));
    }
}
