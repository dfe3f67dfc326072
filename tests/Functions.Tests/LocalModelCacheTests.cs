using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The local model cache through the app's own registrations and Azurite: a second instance (a restarted process) reads the
/// graph from disk, a damaged cached graph is replaced and said so, a half-written file is never served and old entries are
/// deleted past the budget, and an unusable cache folder falls back to loading into memory; a restarted instance makes the
/// version it served last ready while it reads current.json and serves it only when the store confirms that version and its
/// manifest (issue 31, the cached start).
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class LocalModelCacheTests(ServingModelFixture model) : IDisposable
{
    private readonly string cacheRoot = Directory.CreateTempSubdirectory("model-cache-tests-").FullName;
    private readonly List<BlobContainerClient> containers = [];

    [Fact]
    public async Task RestartedInstance_ReadsTheGraphFromTheCache_EvenWhenTheStoreNoLongerHasIt()
    {
        var models = await PublishedAsync();
        var (firstLabel, firstLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", firstLabel);
        Assert.Contains(firstLogs, m => m.Contains("graph downloaded into the local model cache", StringComparison.Ordinal));
        var cached = Assert.Single(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(cacheRoot, "*.partial", SearchOption.AllDirectories));

        // The store's graph is gone: only the cache can answer (the manifest still comes from the store).
        await models.GetBlobClient($"v1/{ColourModel.OnnxFileName}").DeleteAsync();
        var (secondLabel, secondLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", secondLabel);
        Assert.Contains(secondLogs, m => m.Contains("started from the local model cache while current.json was read, and confirmed", StringComparison.Ordinal));
        Assert.True(File.Exists(cached));

        // Without the cached start (Classifier:StartFromCachedModel false) the graph is read from the cache after current.json.
        var (thirdLabel, thirdLogs) = await ClassifyOnceAsync(models, cachedStart: false);
        Assert.Equal("red", thirdLabel);
        Assert.Contains(thirdLogs, m => m.Contains("graph read from the local model cache", StringComparison.Ordinal));
        Assert.DoesNotContain(thirdLogs, m => m.Contains("started from the local model cache", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DamagedCachedGraph_IsDownloadedAgainAndTheLogSaysSo()
    {
        var models = await PublishedAsync();
        await ClassifyOnceAsync(models);
        var cached = Assert.Single(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories));
        var bytes = await File.ReadAllBytesAsync(cached);
        var original = bytes.ToArray();
        bytes[bytes.Length / 2] ^= 0x20;
        await File.WriteAllBytesAsync(cached, bytes);

        var (label, logs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", label);
        Assert.Contains(logs, m => m.StartsWith("Warning", StringComparison.Ordinal) && m.Contains("did not match its manifest", StringComparison.Ordinal));
        Assert.Equal(original, await File.ReadAllBytesAsync(cached));
    }

    [Fact]
    public async Task PartialFilesAndOldEntries_AreNeverServedAndAreDeletedPastTheBudget()
    {
        var models = await PublishedAsync();
        // What a process that died mid-download leaves: only a temporary file, under the name the entry will have.
        await ClassifyOnceAsync(models);
        var entry = Path.GetDirectoryName(Assert.Single(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories)))!;
        Directory.Delete(entry, recursive: true);
        Directory.CreateDirectory(entry);
        var partial = Path.Combine(entry, $".{ColourModel.OnnxFileName}.0123456789abcdef.partial");
        await File.WriteAllBytesAsync(partial, new byte[1000]);
        File.SetLastWriteTimeUtc(partial, DateTime.UtcNow.AddHours(-1));
        // An entry of another version, unused for a day, that takes the cache over its 1 MB budget.
        var old = Directory.CreateDirectory(Path.Combine(cacheRoot, "default-v0-0123456789abcdef")).FullName;
        await File.WriteAllBytesAsync(Path.Combine(old, ColourModel.OnnxFileName), new byte[2 << 20]);
        Directory.SetLastWriteTimeUtc(old, DateTime.UtcNow.AddDays(-1));

        var (label, logs) = await ClassifyOnceAsync(models, budgetMegabytes: 1);
        Assert.Equal("red", label);
        Assert.Contains(logs, m => m.Contains("graph downloaded into the local model cache", StringComparison.Ordinal));
        Assert.False(File.Exists(partial));
        Assert.False(Directory.Exists(old));
        Assert.True(File.Exists(Path.Combine(entry, ColourModel.OnnxFileName)));
    }

    [Fact]
    public async Task RestartedInstance_CreatesItsSessionFromTheSavedOptimizedGraph_AndNeverFromADamagedOne()
    {
        var models = await PublishedAsync();
        var (first, firstLogs) = await AnswerOnceAsync(models);
        Assert.Equal("red", first.Label);
        Assert.Contains(firstLogs, m => m.Contains("optimised the graph and saved it in the local model cache", StringComparison.Ordinal));
        var optimized = Assert.Single(Directory.GetFiles(cacheRoot, "*.optimized.onnx", SearchOption.AllDirectories));
        Assert.True(File.Exists(optimized + ".sha256"));
        Assert.Empty(Directory.GetFiles(cacheRoot, "*.partial", SearchOption.AllDirectories));

        var (second, secondLogs) = await AnswerOnceAsync(models);
        Assert.Contains(secondLogs, m => m.Contains("session created from the optimised graph saved in the local model cache", StringComparison.Ordinal));
        Assert.Equal("red", second.Label);
        Assert.Equal(first.Confidence!.Value, second.Confidence!.Value, 6); // the same computation, only not optimised again

        // A damaged optimised graph (its SHA-256 no longer matches) is not used: the session optimises the verified graph again.
        var bytes = await File.ReadAllBytesAsync(optimized);
        bytes[bytes.Length / 2] ^= 0x20;
        await File.WriteAllBytesAsync(optimized, bytes);
        var (thirdLabel, thirdLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", thirdLabel);
        Assert.DoesNotContain(thirdLogs, m => m.Contains("created from the optimised graph", StringComparison.Ordinal));
        Assert.Contains(thirdLogs, m => m.Contains("optimised the graph and saved it", StringComparison.Ordinal));
        Assert.NotEqual(bytes, await File.ReadAllBytesAsync(optimized));
    }

    [Fact]
    public async Task RestartedInstance_StartsTheVersionItServedLastWhileCurrentJsonIsRead_AndServesItOnceTheStoreConfirmsIt()
    {
        var models = await PublishedAsync();
        var (firstLabel, firstLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", firstLabel);
        Assert.DoesNotContain(firstLogs, m => m.Contains("started from the local model cache", StringComparison.Ordinal)); // nothing served here yet

        var (secondLabel, secondLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("red", secondLabel);
        Assert.Contains(secondLogs, m => m.Contains("version v1: started from the local model cache while current.json was read, and confirmed by the store's manifest", StringComparison.Ordinal));
        Assert.DoesNotContain(secondLogs, m => m.Contains("graph read from the local model cache", StringComparison.Ordinal)); // not loaded a second time
    }

    [Fact]
    public async Task RestartedInstance_DiscardsTheStartedVersion_WhenCurrentJsonNamesAnother()
    {
        var models = await PublishedAsync();
        Assert.Equal("red", (await ClassifyOnceAsync(models)).Label);
        // v2 is published while the instance is down: the same graph with the labels reversed, so a red image is "blue".
        await new ModelStore(models).PublishAsync(model.ReversedFolder, version: "v2");

        var (label, logs) = await ClassifyOnceAsync(models);
        Assert.Equal("blue", label); // v2's answer: v1 was never served
        Assert.Contains(logs, m => m.Contains("version v1, started from the local model cache, was discarded: current.json names version v2, not v1; loading v2", StringComparison.Ordinal));

        // The instance now remembers v2: the next restart starts v2 early and serves it.
        var (nextLabel, nextLogs) = await ClassifyOnceAsync(models);
        Assert.Equal("blue", nextLabel);
        Assert.Contains(nextLogs, m => m.Contains("version v2: started from the local model cache while current.json was read, and confirmed", StringComparison.Ordinal));
    }

    [Fact]
    public async Task RestartedInstance_DiscardsTheStartedVersion_WhenTheStoresManifestOfItDiffersFromTheKeptOne()
    {
        var models = await PublishedAsync();
        Assert.Equal("red", (await ClassifyOnceAsync(models)).Label);
        // Version v1's manifest replaced in the store behind the app's back (versions are immutable to the publisher, not to
        // whoever can write the container): same graph, so the same cache entry, but the labels reversed.
        var reversed = ModelManifest.Parse(await File.ReadAllBytesAsync(Path.Combine(model.ReversedFolder, ModelManifest.FileName)), "reversed") with { Version = "v1" };
        await models.GetBlobClient($"v1/{ModelManifest.FileName}").UploadAsync(BinaryData.FromString(reversed.ToJson()), overwrite: true);

        var (label, logs) = await ClassifyOnceAsync(models);
        Assert.Equal("blue", label); // what the store's manifest says, not what the cache kept
        Assert.Contains(logs, m => m.Contains("version v1, started from the local model cache, was discarded: the store's manifest of version v1 differs from the one the cache kept", StringComparison.Ordinal));
    }

    [Fact]
    public async Task UnusableCacheFolder_LoadsIntoMemoryAndSaysSo()
    {
        var models = await PublishedAsync();
        var blocker = Path.Combine(cacheRoot, "a-file");
        await File.WriteAllTextAsync(blocker, "not a folder");

        var (label, logs) = await ClassifyOnceAsync(models, directory: Path.Combine(blocker, "cache"));
        Assert.Equal("red", label);
        Assert.Contains(logs, m => m.StartsWith("Warning", StringComparison.Ordinal) && m.Contains("the local model cache cannot be used", StringComparison.Ordinal));
    }

    public void Dispose()
    {
        Directory.Delete(cacheRoot, recursive: true);
        containers.ForEach(c => c.DeleteIfExists());
    }

    private async Task<BlobContainerClient> PublishedAsync()
    {
        var models = new BlobContainerClient(TestStorage.ConnectionString, $"models-{Guid.NewGuid():N}");
        await models.CreateAsync();
        containers.Add(models);
        await new ModelStore(models).PublishAsync(model.Folder, version: "v1");
        return models;
    }

    /// <summary>A fresh instance of the app (its own registrations, as after a restart) answers one red image.</summary>
    private async Task<(string? Label, List<string> Logs)> ClassifyOnceAsync(BlobContainerClient models, int budgetMegabytes = 2048, string? directory = null, bool cachedStart = true)
    {
        var (prediction, logs) = await AnswerOnceAsync(models, budgetMegabytes, directory, cachedStart);
        return (prediction.Label, logs);
    }

    /// <summary>As <see cref="ClassifyOnceAsync"/>, the whole answer.</summary>
    private async Task<(PredictionDocument Prediction, List<string> Logs)> AnswerOnceAsync(BlobContainerClient models, int budgetMegabytes = 2048, string? directory = null, bool cachedStart = true)
    {
        var logs = new CapturingLoggerProvider();
        await using var host = await TestHost.StartAsync(
            new Dictionary<string, string?>
            {
                ["Classifier:ModelCacheDirectory"] = directory ?? cacheRoot,
                ["Classifier:ModelCacheMegabytes"] = budgetMegabytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
                ["Classifier:StartFromCachedModel"] = cachedStart ? "true" : "false",
            },
            models,
            logging: builder => builder.SetMinimumLevel(LogLevel.Information).AddProvider(logs));
        var result = await host.Function<ClassifyImage>().Run(TestHost.HttpContext(ServingModelFixture.Image("red", seed: 41)).Request, CancellationToken.None);
        return (Assert.IsType<PredictionDocument>(Assert.IsType<OkObjectResult>(result).Value), [.. logs.Messages]);
    }
}
