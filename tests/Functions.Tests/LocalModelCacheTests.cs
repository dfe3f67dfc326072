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
    private readonly List<string> folders = [];

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

    [Fact]
    public async Task Int8ModelWithAPortableGraph_ServesThe8BitGraphWithVnni_AndOnlyThe7BitOneWithout_SayingWhy()
    {
        var models = await PublishedAsync(Int8Package(portable: true), "v8");
        // A CPU without VNNI, reached by the test-only override of the detection (this machine has VNNI). The 8-bit graph is
        // deleted from the store first: that CPU neither downloads nor needs it.
        await models.GetBlobClient($"v8/{ColourModel.OnnxFileName}").DeleteAsync();
        var (label, logs) = await WithoutVnniAsync(() => ClassifyOnceAsync(models));
        Assert.Equal("red", label);
        Assert.Contains(logs, m => m.StartsWith("Information", StringComparison.Ordinal)
            && m.Contains("version v8 serves model.int8-7bit.onnx, int8 (7-bit weights): this CPU has no 8-bit dot products (VNNI)", StringComparison.Ordinal)
            && m.Contains("the 7-bit graph passed its own check", StringComparison.Ordinal));
        Assert.DoesNotContain(logs, m => m.StartsWith("Warning", StringComparison.Ordinal));
        Assert.Single(Directory.GetFiles(cacheRoot, "model.int8-7bit.onnx", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories));

        if (CpuFeatures.HasInt8DotProduct)
        {
            var withVnni = await PublishedAsync(Int8Package(portable: true), "v8");
            var (vnniLabel, vnniLogs) = await ClassifyOnceAsync(withVnni);
            Assert.Equal("red", vnniLabel);
            Assert.Contains(vnniLogs, m => m.Contains("version v8 serves model.onnx, int8 (8-bit weights): this CPU has 8-bit dot products", StringComparison.Ordinal));
            Assert.Single(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories));
        }
    }

    [Fact]
    public async Task Int8ModelWithOnly8BitWeights_StillServesOnACpuWithoutVnni_WithTheWarningNamingTheFix()
    {
        // A model made before portable graphs existed (or with --int8-weight-bits 8) loads as it did, with the warning.
        var models = await PublishedAsync(Int8Package(portable: false), "old");
        var (label, logs) = await WithoutVnniAsync(() => ClassifyOnceAsync(models));
        Assert.Equal("red", label);
        Assert.Contains(logs, m => m.StartsWith("Warning", StringComparison.Ordinal)
            && m.Contains("serves an int8 graph with 8-bit weights made for CPUs with 8-bit dot products (VNNI), but this CPU has none", StringComparison.Ordinal)
            && m.Contains("retrain with the default --int8-weight-bits auto", StringComparison.Ordinal));
        Assert.Single(Directory.GetFiles(cacheRoot, ColourModel.OnnxFileName, SearchOption.AllDirectories));
    }

    [Fact]
    public void PortableInt8Graph_WithoutAPassing7BitCheck_IsRefused()
    {
        var folder = Int8Package(portable: true);
        var manifest = ModelManifest.Parse(File.ReadAllBytes(Path.Combine(folder, ModelManifest.FileName)), folder);
        var failed = manifest with { PortableGraph = manifest.PortableGraph! with { Quantization = Check(7) with { Accepted = false } } };
        var error = Assert.Throws<ModelFormatException>(() => failed.Validate("m"));
        Assert.Contains("records no passing check of a graph with 7-bit weights", error.Message, StringComparison.Ordinal);
        var of7Bit = manifest with { Quantization = Check(7) };
        Assert.Contains("stands in for an int8 graph with 8-bit weights", Assert.Throws<ModelFormatException>(() => of7Bit.Validate("m")).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The colour model packaged as an int8 model with 8-bit weights and a passing check, and (<paramref name="portable"/>)
    /// a 7-bit graph with its own passing check. The graphs are the colour model's float graph (the labels it gives do not
    /// depend on which runs); which file serves shows in the cache and the log.
    /// </summary>
    private string Int8Package(bool portable)
    {
        var folder = Path.Combine(cacheRoot, "..", $"{Path.GetFileName(cacheRoot)}-int8-{Guid.NewGuid():N}");
        folders.Add(folder);
        var source = ModelManifest.Parse(File.ReadAllBytes(Path.Combine(model.Folder, ModelManifest.FileName)), model.Folder);
        var graph = File.ReadAllBytes(Path.Combine(model.Folder, ColourModel.OnnxFileName));
        var manifest = source with
        {
            Precision = ModelPrecision.Int8,
            Quantization = Check(8),
            PortableGraph = portable ? new PortableGraphSpec("model.int8-7bit.onnx", ModelPrecision.Int8, Check(7)) : null,
        };
        (string, string, byte[])[] files = portable
            ? [(ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph), (ModelFileRoles.PortableOnnx, "model.int8-7bit.onnx", Retitled(graph))]
            : [(ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph)];
        ColourModel.WritePackage(folder, manifest, files);
        return folder;
    }

    /// <summary>The same graph with another doc string: other bytes, other SHA-256, the same answers.</summary>
    private static byte[] Retitled(byte[] graph)
    {
        var proto = Onnx.ModelProto.Parser.ParseFrom(graph);
        proto.DocString = "the 7-bit graph";
        return Google.Protobuf.MessageExtensions.ToByteArray(proto);
    }

    private static QuantizationSummary Check(int bits) => new()
    {
        Scheme = $"QDQ: per-channel symmetric int8 weights ({bits}-bit range)",
        WeightBits = bits,
        CalibrationImages = 8,
        ValidationImages = 24,
        Fp32Accuracy = 1,
        Int8Accuracy = 1,
        Top1Agreement = 1,
        MaxProbabilityDifference = 0.01,
        MaxAccuracyDropPoints = 0.5,
        Accepted = true,
        Fp32Bytes = 100,
        Int8Bytes = 30,
    };

    /// <summary>Runs <paramref name="run"/> as on a CPU without 8-bit dot products (the test-only override; fp32 models, which every other test here serves, are unaffected).</summary>
    private static async Task<T> WithoutVnniAsync<T>(Func<Task<T>> run)
    {
        Environment.SetEnvironmentVariable(CpuFeatures.AssumeNoInt8DotProductVariable, "1");
        try
        {
            return await run();
        }
        finally
        {
            Environment.SetEnvironmentVariable(CpuFeatures.AssumeNoInt8DotProductVariable, null);
        }
    }

    public void Dispose()
    {
        folders.ForEach(f => Directory.Delete(f, recursive: true));
        Directory.Delete(cacheRoot, recursive: true);
        containers.ForEach(c => c.DeleteIfExists());
    }

    private async Task<BlobContainerClient> PublishedAsync(string? folder = null, string version = "v1")
    {
        var models = new BlobContainerClient(TestStorage.ConnectionString, $"models-{Guid.NewGuid():N}");
        await models.CreateAsync();
        containers.Add(models);
        await new ModelStore(models).PublishAsync(folder ?? model.Folder, version: version);
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
