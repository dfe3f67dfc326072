using System.Text.Json.Nodes;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Azure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>
/// A published model that cannot be loaded, for whatever reason, is refused by the real provider against Azurite: the
/// previous model keeps answering and the background refresh goes on (an exception escaping it would stop the host).
/// Sizes a manifest or pointer declares are checked before anything of that size is allocated, and a model folder
/// reads only its own files.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class RefusedModelTests(ServingModelFixture model)
{
    [Fact]
    public async Task ManifestThatBreaksTheLoaderInAnUnforeseenWay_IsRefused_ThePreviousModelAnswers_AndTheRefreshGoesOn()
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
            // A resize smaller than the crop passes the manifest's checks and fails when the pipeline is built, with an
            // ArgumentException: a type no list of "bad model" exceptions names.
            await CopyVersionAsync(host.Models, "v1", "v2", manifest => manifest["preprocessing"]!["resizeSize"] = 8);
            await PointAtAsync(host.Models, "v2");

            await WaitForAsync(() => logs.Messages.Any(m => m.StartsWith("Error", StringComparison.Ordinal) && m.Contains("Refused model version v2", StringComparison.Ordinal)));
            Assert.False(service.ExecuteTask!.IsCompleted, $"the refresh loop ended: {service.ExecuteTask.Exception}");
            Assert.Equal((1, "v1"), (host.ModelProvider.RefusedCount, host.ModelProvider.Current!.Version));
            var prediction = await ClassifyAsync(host, "red", seed: 950);
            Assert.Equal(("v1", "red"), (prediction.ModelVersion, prediction.Label));

            // The loop still runs: a good version published after the bad one goes live by itself.
            await host.Store.PublishAsync(model.ReversedFolder, version: "v3");
            await WaitForAsync(() => host.ModelProvider.Current?.Version == "v3");
        }
        finally
        {
            await service.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>The storage SDK reports its network timeout as a cancellation: that is the storage's failure, not the model's.</summary>
    [Fact]
    public async Task DownloadThatTimesOut_IsNotARefusal_TheNextCheckLoadsTheVersion()
    {
        var timeouts = new TimeoutPolicy();
        await using var host = await TestHost.StartAsync(configure: services => services.AddAzureClients(clients => clients.ConfigureDefaults(options =>
            options.AddPolicy(timeouts, HttpPipelinePosition.PerCall))));
        await host.Store.PublishAsync(model.Folder, version: "v1");
        Assert.Equal("v1", (await host.ModelProvider.RefreshAsync())!.Version);
        await host.Store.PublishAsync(model.ReversedFolder, version: "v2");

        timeouts.Path = $"/v2/{ColourModel.OnnxFileName}";
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => host.ModelProvider.RefreshAsync());
        Assert.Equal((0, "v1"), (host.ModelProvider.RefusedCount, host.ModelProvider.Current!.Version));

        timeouts.Path = null;
        Assert.Equal("v2", (await host.ModelProvider.RefreshAsync())!.Version);
    }

    [Fact]
    public async Task ManifestDeclaringAHugeFile_IsRefusedBeforeTheSizeIsAllocated()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        Assert.Equal("v1", (await host.ModelProvider.RefreshAsync())!.Version);
        // Two billion bytes declared for a graph of a few hundred kilobytes.
        await CopyVersionAsync(host.Models, "v1", "v2", manifest =>
        {
            foreach (var file in manifest["files"]!.AsArray())
            {
                file!["bytes"] = 2_000_000_000L;
            }
        });
        await PointAtAsync(host.Models, "v2");

        var allocated = GC.GetTotalAllocatedBytes(precise: true);
        Assert.Equal("v1", (await host.ModelProvider.RefreshAsync())!.Version);
        allocated = GC.GetTotalAllocatedBytes(precise: true) - allocated;

        Assert.Equal(1, host.ModelProvider.RefusedCount);
        Assert.True(allocated < 256L << 20, $"{allocated:N0} bytes allocated while refusing the version");
        var prediction = await ClassifyAsync(host, "red", seed: 951);
        Assert.Equal(("v1", "red"), (prediction.ModelVersion, prediction.Label));
    }

    [Fact]
    public async Task PointerOverItsSizeLimit_IsRefusedUnread_NotLoaded()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1", makeCurrent: false);
        // A valid pointer to a valid version, padded past the limit: refused for its size alone.
        var padded = $$"""{"version":"v1","publishedUtc":"2026-01-01T00:00:00Z","pad":"{{new string(' ', ModelStore.MaxPointerBytes)}}"}""";
        await host.Models.UploadBlobAsync(ModelStore.PointerBlobName, BinaryData.FromString(padded));

        var error = await Assert.ThrowsAsync<ModelUnavailableException>(() => host.ModelProvider.AcquireAsync());
        Assert.Contains("refused", error.Message, StringComparison.Ordinal);
        Assert.Equal((1, 0), (host.ModelProvider.RefusedCount, host.ModelProvider.LoadCount));
    }

    [Fact]
    public async Task ModelFolderWithALinkToAFileOutsideIt_IsRefused_AndNothingIsPublished()
    {
        var root = Path.Combine(Path.GetTempPath(), $"linked-model-{Guid.NewGuid():N}");
        var folder = Path.Combine(root, "model");
        try
        {
            Directory.CreateDirectory(folder);
            foreach (var file in Directory.GetFiles(model.Folder))
            {
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            }
            // The same bytes, so only where the file lives is wrong: first inside the folder (read), then outside (refused).
            var graph = Path.Combine(folder, ColourModel.OnnxFileName);
            File.Move(graph, Path.Combine(folder, "real.onnx"));
            File.CreateSymbolicLink(graph, "real.onnx");
            Assert.Single((await ModelPackage.LoadAsync(folder)).Manifest.Files);

            File.Move(Path.Combine(folder, "real.onnx"), Path.Combine(root, "outside.onnx"));
            File.Delete(graph);
            File.CreateSymbolicLink(graph, Path.Combine("..", "outside.onnx"));
            var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
            Assert.Contains("outside the model folder", error.Message, StringComparison.Ordinal);

            await using var host = await TestHost.StartAsync();
            await Assert.ThrowsAsync<ModelFormatException>(() => host.Store.PublishAsync(folder, version: "v1"));
            await foreach (var blob in host.Models.GetBlobsAsync())
            {
                Assert.Fail($"{blob.Name} was published");
            }
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    /// <summary>Copies a published version's blobs to another version, with its manifest changed by <paramref name="change"/> (sizes and hashes left as they were).</summary>
    private static async Task CopyVersionAsync(BlobContainerClient models, string from, string to, Action<JsonObject> change)
    {
        await foreach (var blob in models.GetBlobsAsync(BlobTraits.None, BlobStates.None, from + "/", CancellationToken.None))
        {
            var content = (await models.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content;
            var name = to + blob.Name[from.Length..];
            if (blob.Name.EndsWith("/" + ModelManifest.FileName, StringComparison.Ordinal))
            {
                var manifest = JsonNode.Parse(content.ToString())!.AsObject();
                manifest["version"] = to;
                change(manifest);
                content = BinaryData.FromString(manifest.ToJsonString());
            }
            await models.UploadBlobAsync(name, content);
        }
    }

    /// <summary>Moves <c>current.json</c> without the store's checks (the store would refuse these versions).</summary>
    private static async Task PointAtAsync(BlobContainerClient models, string version) =>
        await models.GetBlobClient(ModelStore.PointerBlobName).UploadAsync(
            BinaryData.FromString($$"""{"version":"{{version}}","publishedUtc":"{{DateTimeOffset.UtcNow:O}}"}"""), overwrite: true);

    private static async Task<PredictionDocument> ClassifyAsync(TestHost host, string colour, int seed)
    {
        var result = await host.Function<ClassifyImage>().Run(TestHost.HttpContext(ServingModelFixture.Image(colour, seed)).Request, CancellationToken.None);
        return Assert.IsType<PredictionDocument>(Assert.IsType<OkObjectResult>(result).Value);
    }

    /// <summary>Answers requests for a blob whose path ends with <see cref="Path"/> as the SDK answers a network timeout.</summary>
    private sealed class TimeoutPolicy : HttpPipelinePolicy
    {
        public string? Path { get; set; }

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            ThrowIfTimedOut(message);
            ProcessNext(message, pipeline);
        }

        public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            ThrowIfTimedOut(message);
            return ProcessNextAsync(message, pipeline);
        }

        private void ThrowIfTimedOut(HttpMessage message)
        {
            if (Path is { } path && message.Request.Uri.Path.EndsWith(path, StringComparison.Ordinal))
            {
                throw new TaskCanceledException("The operation was cancelled because it exceeded the configured timeout of 0:01:40.");
            }
        }
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
