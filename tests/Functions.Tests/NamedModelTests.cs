using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>Several named models in one app (the app's real registrations over Azurite): routes, uploads, swaps and the memory budget.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class NamedModelTests(ServingModelFixture model)
{
    [Fact]
    public async Task TwoModels_ServedFromTheirRoutesAndUploads_EachSwappedAlone()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var cats = new ModelStore(host.Models, "cats");
        await cats.PublishAsync(model.ReversedFolder, version: "c1");
        var red = ServingModelFixture.Image("red", seed: 31);

        Assert.Equal(("red", "v1", null), await ClassifyAsync(host, "default", red));
        Assert.Equal(("blue", "c1", "cats"), await ClassifyAsync(host, "cats", red));
        var plain = await host.Function<ClassifyImage>().Run(TestHost.HttpContext(red).Request, CancellationToken.None);
        Assert.Equal("red", ((PredictionDocument)((OkObjectResult)plain).Value!).Label);

        // Uploads: the first path segment names the model when it is a published one, else the default serves.
        var handler = host.Get<UploadedImageHandler>();
        foreach (var name in new[] { "cats/a.png", "dogs/b.png", "c.png" })
        {
            await host.UploadAsync(name, red);
            Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        }
        Assert.Equal(("blue", "c1", "cats"), await PredictionAsync(host, "cats/a.png"));
        Assert.Equal(("red", "v1", null), await PredictionAsync(host, "dogs/b.png"));
        Assert.Equal(("red", "v1", null), await PredictionAsync(host, "c.png"));

        // A new version of cats goes live on the next check; the default model is not reloaded.
        var defaultLoads = host.ModelProvider.LoadCount;
        await cats.PublishAsync(model.Folder, version: "c2");
        await host.Get<ModelRegistry>().RefreshLoadedAsync(CancellationToken.None);
        Assert.Equal(("red", "c2", "cats"), await ClassifyAsync(host, "cats", red));
        Assert.Equal(("red", "v1", null), await ClassifyAsync(host, "default", red));
        Assert.Equal(defaultLoads, host.ModelProvider.LoadCount);

        var list = (ModelList)((OkObjectResult)await host.Function<ListModels>().Run(new DefaultHttpContext().Request, CancellationToken.None)).Value!;
        Assert.Equal([new ModelListEntry("default", "v1", "v1", "multiClass", null), new ModelListEntry("cats", "c2", "c2", "multiClass", null)], list.Models);
    }

    [Theory]
    [InlineData("dogs", "No model named \"dogs\" is published.")]
    [InlineData("Cats", "must start with a lowercase letter")]
    public async Task UnknownOrInvalidModel_Is404WithWhatIsWrong(string name, string message)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var context = TestHost.HttpContext(ServingModelFixture.Image("red", seed: 32));

        var result = await TestHost.AnswerAsync(context, (request, token) => host.Function<ClassifyWithModel>().Run(request, name, token));

        var problem = Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(result).Value);
        Assert.Equal(404, problem.Status);
        Assert.Equal("ModelNotFound", problem.Extensions[Problems.CodeExtension]);
        Assert.Contains(message, problem.Detail, StringComparison.Ordinal);
        Assert.DoesNotContain("127.0.0.1", problem.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MemoryBudget_UnloadsTheLeastRecentlyUsedIdleNamedModel_NeverOneInUse()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:ModelMemoryBudgetMegabytes"] = "0" });
        foreach (var name in new[] { "a", "b" })
        {
            await new ModelStore(host.Models, name).PublishAsync(model.Folder, version: "v1");
        }
        var registry = host.Get<ModelRegistry>();

        var holdA = await registry.AcquireAsync("a", CancellationToken.None);
        using (await registry.AcquireAsync("b", CancellationToken.None))
        {
            Assert.Equal(0, registry.Evictions); // a is held by a request: it stays loaded
            Assert.All(registry.Loaded, m => Assert.Equal("v1", m.LoadedVersion));
        }
        var loadedA = holdA.Model;
        holdA.Dispose();
        using (await registry.AcquireAsync("b", CancellationToken.None))
        {
            Assert.Equal(1, registry.Evictions);
            Assert.Equal([new KnownModel("a", null), new KnownModel("b", "v1")], registry.Loaded);
            Assert.True(loadedA.IsDisposed);
        }

        using var again = await registry.AcquireAsync("a", CancellationToken.None);
        Assert.Equal("v1", again.Version);
        Assert.False(again.Model.IsDisposed);
        Assert.Equal([new KnownModel("a", "v1"), new KnownModel("b", null)], registry.Loaded);
    }

    [Fact]
    public async Task Canary_SendsTheNamesInItsShareToTheNewVersion_UploadsAndHttp()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        await host.Store.PublishAsync(model.ReversedFolder, version: "v2", makeCurrent: false);
        await host.Store.PromoteAsync("v2", 50);
        await host.ModelProvider.RefreshAsync();
        var names = Enumerable.Range(0, 40).Select(i => $"canary/{i}.png").ToList();
        var toCanary = names.Where(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), new CanaryRelease("v2", 50))).Take(2).ToList();
        var toLive = names.Except(toCanary).Where(n => !CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), new CanaryRelease("v2", 50))).Take(2).ToList();
        var red = ServingModelFixture.Image("red", seed: 33);
        Assert.Equal(2, toCanary.Count); // half of 40 names are in a 50 % share: a router that never chooses the canary fails here

        var handler = host.Get<UploadedImageHandler>();
        foreach (var name in toCanary.Concat(toLive))
        {
            await host.UploadAsync(name, red);
            await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None);
        }
        foreach (var name in toCanary)
        {
            Assert.Equal(("blue", "v2", null), await PredictionAsync(host, name));
        }
        foreach (var name in toLive)
        {
            Assert.Equal(("red", "v1", null), await PredictionAsync(host, name));
        }

        // HTTP: the image's bytes choose, so the same image always gets the same version.
        var images = Enumerable.Range(100, 40).Select(seed => ServingModelFixture.Image("red", seed)).ToList();
        var byCanary = images.GroupBy(i => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(i), new CanaryRelease("v2", 50))).ToDictionary(g => g.Key, g => g.First());
        Assert.Equal(2, byCanary.Count);
        foreach (var (canary, image) in byCanary)
        {
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var result = await host.Function<ClassifyImage>().Run(TestHost.HttpContext(image).Request, CancellationToken.None);
                Assert.Equal(canary ? "v2" : "v1", ((PredictionDocument)((OkObjectResult)result).Value!).ModelVersion);
            }
        }
    }

    private static async Task<(string? Label, string? Version, string? Model)> ClassifyAsync(TestHost host, string name, byte[] image)
    {
        var result = await host.Function<ClassifyWithModel>().Run(TestHost.HttpContext(image).Request, name, CancellationToken.None);
        var prediction = (PredictionDocument)((OkObjectResult)result).Value!;
        return (prediction.Label, prediction.ModelVersion, prediction.Model);
    }

    private static async Task<(string? Label, string? Version, string? Model)> PredictionAsync(TestHost host, string image)
    {
        var content = (await host.Predictions.GetBlobClient(PredictionDocument.BlobNameFor(image)).DownloadContentAsync()).Value.Content;
        var prediction = PredictionDocument.Parse(content.ToArray());
        return (prediction.Label, prediction.ModelVersion, prediction.Model);
    }
}
