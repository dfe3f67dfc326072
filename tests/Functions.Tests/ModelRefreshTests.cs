using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>The background refresh, and the provider's behaviour when the store is broken, malformed or slow to answer.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class ModelRefreshTests(ServingModelFixture model)
{
    [Fact]
    public async Task RefreshService_LoadsAtStartAndSwapsOnTheInterval_WithoutRequests_LoggingSwapsAndRefusals()
    {
        var logs = new CapturingLoggerProvider();
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:ModelRefreshInterval"] = "00:00:01" },
            logging: builder => builder.SetMinimumLevel(LogLevel.Information).AddProvider(logs));
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var service = Assert.Single(host.Services.GetServices<IHostedService>().OfType<ModelRefreshService>());
        await service.StartAsync(CancellationToken.None);
        try
        {
            await WaitForAsync(() => host.ModelProvider.Current?.Version == "v1");
            await host.Store.PublishAsync(model.ReversedFolder, version: "v2");
            await WaitForAsync(() => logs.Messages.Any(m => m.Contains("Model version v2 is live (was v1)", StringComparison.Ordinal)));
            Assert.Equal("v2", host.ModelProvider.Current?.Version);

            await host.Store.PublishAsync(model.Folder, version: "v3");
            var graph = host.Models.GetBlobClient($"v3/{ColourModel.OnnxFileName}");
            await graph.UploadAsync(BinaryData.FromString("not the graph"), overwrite: true);
            await WaitForAsync(() => logs.Messages.Any(m => m.StartsWith("Error", StringComparison.Ordinal) && m.Contains("Refused model version v3", StringComparison.Ordinal)));
            Assert.Equal(1, host.ModelProvider.RefusedCount);
            Assert.Equal("v2", host.ModelProvider.Current!.Version);
            Assert.Equal(2, host.ModelProvider.LoadCount);
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task RefreshService_StartsTheFirstLoadInStartingAsync_BeforeTheHostStartsAnyHostedService()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var service = Assert.Single(host.Services.GetServices<IHostedService>().OfType<ModelRefreshService>());
        // The host calls every IHostedLifecycleService's StartingAsync before any StartAsync (the worker's own included).
        await Assert.IsAssignableFrom<IHostedLifecycleService>(service).StartingAsync(CancellationToken.None);
        await WaitForAsync(() => host.ModelProvider.Current?.Version == "v1");
        Assert.Equal(1, host.ModelProvider.LoadCount);

        await service.StartAsync(CancellationToken.None); // its loop takes over the first load instead of starting another
        await service.StopAsync(CancellationToken.None);
        Assert.Equal(1, host.ModelProvider.LoadCount);
    }

    [Fact]
    public async Task MalformedCurrentJson_IsRefusedLikeABadModel_AndAnswersDoNotNameTheStorage()
    {
        await using var host = await TestHost.StartAsync();
        await host.Models.UploadBlobAsync(ModelStore.PointerBlobName, BinaryData.FromString("{ this is not a pointer"));
        var name = await host.UploadAsync("early.png", ServingModelFixture.Image("red", seed: 400));

        var error = await Assert.ThrowsAsync<ModelUnavailableException>(() => host.ModelProvider.AcquireAsync());
        Assert.Equal(1, host.ModelProvider.RefusedCount);
        Assert.Equal(PredictionOutcome.NoModel,
            await host.Get<UploadedImageHandler>().HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        var answer = await TestHost.AnswerAsync(TestHost.HttpContext(ServingModelFixture.Image("red", seed: 401)), host.Function<ClassifyImage>().Run);
        var problem = Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(answer).Value);
        Assert.Equal(503, problem.Status);
        AssertNamesNoStorage(host, error.Message);
        AssertNamesNoStorage(host, JsonSerializer.Serialize(problem));

        // A valid pointer published over it goes live.
        await host.Models.DeleteBlobAsync(ModelStore.PointerBlobName);
        await host.Store.PublishAsync(model.Folder, version: "v1");
        Assert.Equal("v1", (await host.ModelProvider.RefreshAsync())!.Version);
    }

    [Fact]
    public async Task NothingPublished_The503AnswerDoesNotNameTheStorage()
    {
        await using var host = await TestHost.StartAsync();
        var context = TestHost.HttpContext(ServingModelFixture.Image("red", seed: 402));
        var answer = await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run);
        var problem = Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(answer).Value);
        Assert.Equal(503, problem.Status);
        AssertNamesNoStorage(host, JsonSerializer.Serialize(problem));
    }

    [Fact]
    public async Task FirstCallerDisconnecting_DoesNotAbortTheSharedLoad()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        using var first = new CancellationTokenSource();
        var provider = host.ModelProvider;
        var abandoned = provider.AcquireAsync(first.Token);
        var others = Enumerable.Range(0, 4).Select(_ => provider.AcquireAsync()).ToList();
        await first.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        var leases = await Task.WhenAll(others);
        Assert.Equal(1, provider.LoadCount);
        Assert.All(leases, lease => Assert.Equal("v1", lease.Version));
        foreach (var lease in leases)
        {
            lease.Dispose();
        }
    }

    [Fact]
    public async Task LoadFailure_IsRememberedForTheBackoff_QueuedCallersDoNotRetryOneAfterAnother()
    {
        // A models container on a port where nothing listens, with no SDK retries: every check fails at once.
        var unreachable = new BlobContainerClient(new Uri("http://127.0.0.1:9/devstoreaccount1/models"),
            new BlobClientOptions { Retry = { MaxRetries = 0, NetworkTimeout = TimeSpan.FromSeconds(2) } });
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:ModelRefreshInterval"] = "00:00:30" },
            configure: services => services.AddSingleton(new ModelStore(unreachable)));
        var provider = host.ModelProvider;

        var errors = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ =>
            Assert.ThrowsAsync<ModelUnavailableException>(() => provider.AcquireAsync())));
        await Assert.ThrowsAsync<ModelUnavailableException>(() => provider.AcquireAsync());

        Assert.Equal(1, provider.CheckCount);
        Assert.All(errors, e => Assert.DoesNotContain("127.0.0.1", e.Message, StringComparison.Ordinal));
    }

    private static void AssertNamesNoStorage(TestHost host, string text)
    {
        Assert.DoesNotContain(host.Models.Uri.Authority, text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain(host.Models.Name, text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("devstoreaccount1", text, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("http", text.Replace("https://www.rfc-editor.org", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase);
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting for the refresh service");
            await Task.Delay(100);
        }
    }
}
