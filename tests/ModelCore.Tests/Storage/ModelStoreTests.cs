using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.ModelCore.Tests.Storage;

/// <summary>The model store against a real Azurite. One fixture model folder is shared (it takes a few seconds to build).</summary>
[Collection(TorchTests.Collection)]
public sealed class ModelStoreTests : IClassFixture<ModelStoreTests.Models>, IAsyncLifetime
{
    private readonly Models models;
    private BlobContainerClient container = null!;

    public ModelStoreTests(Models models) => this.models = models;

    public sealed class Models : IDisposable
    {
        public string First { get; } = Path.Combine(Path.GetTempPath(), $"store-a-{Guid.NewGuid():N}");

        public string Second { get; } = Path.Combine(Path.GetTempPath(), $"store-b-{Guid.NewGuid():N}");

        public Models()
        {
            TestModels.SaveColourModel(First, seed: 1);
            TestModels.SaveColourModel(Second, seed: 2);
        }

        public void Dispose()
        {
            Directory.Delete(First, recursive: true);
            Directory.Delete(Second, recursive: true);
        }
    }

    public async Task InitializeAsync() => container = await TestStorage.CreateContainerAsync("models");

    public async Task DisposeAsync() => await container.DeleteAsync();

    [Fact]
    public async Task Publish_WritesFilesThenManifestThenPointer_AndLoadVerifiesThem()
    {
        var store = new ModelStore(container);
        Assert.Null(await store.GetCurrentAsync());

        var version = await store.PublishAsync(models.First);

        var current = await store.GetCurrentAsync();
        Assert.Equal(version, current!.State.Version);
        Assert.Null(current.State.Previous);
        var package = await store.LoadAsync(version);
        Assert.Equal(version, package.Manifest.Version);
        Assert.Equal(["red", "green", "blue"], package.Manifest.Labels);
        Assert.NotNull(package.FindFile(ModelFileRoles.Onnx));
        var names = new List<string>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, $"{version}/", CancellationToken.None))
        {
            names.Add(blob.Name[(version.Length + 1)..]);
        }
        Assert.Equal(["manifest.json", "model.onnx", "model.safetensors"], names.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Promote_RollsBackToAnEarlierVersion()
    {
        var store = new ModelStore(container);
        var first = await store.PublishAsync(models.First, version: "v1");
        var second = await store.PublishAsync(models.Second, version: "v2");
        Assert.Equal(second, (await store.GetCurrentAsync())!.State.Version);

        var pointer = await store.SetCurrentAsync(first);

        Assert.Equal("v1", pointer.Version);
        Assert.Equal("v2", pointer.Previous);
        var listed = await store.ListAsync();
        Assert.Equal(["v2", "v1"], listed.Select(m => m.Version));
        Assert.True(listed.Single(m => m.Version == "v1").IsCurrent);
        Assert.All(listed, m => Assert.Null(m.Problem));
    }

    [Fact]
    public async Task Publish_RefusesToOverwriteAnExistingVersion()
    {
        var store = new ModelStore(container);
        await store.PublishAsync(models.First, version: "v1");
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => store.PublishAsync(models.Second, version: "v1"));
        Assert.Contains("immutable", error.Message, StringComparison.Ordinal);
        var package = await store.LoadAsync("v1");
        Assert.Equal((await ModelPackage.LoadAsync(models.First)).Manifest.Files, package.Manifest.Files);
    }

    [Fact]
    public async Task InterruptedPublish_LeavesTheOldModelLive()
    {
        var store = new ModelStore(container);
        await store.PublishAsync(models.First, version: "v1");
        // A publish that died after uploading some files of v2 and before its manifest and pointer.
        await container.GetBlobClient("v2/model.safetensors").UploadAsync(BinaryData.FromBytes(File.ReadAllBytes(Path.Combine(models.Second, "model.safetensors"))));

        Assert.Equal("v1", (await store.GetCurrentAsync())!.State.Version);
        var listed = await store.ListAsync();
        Assert.Equal("incomplete: no manifest", listed.Single(m => m.Version == "v2").Problem);
        await Assert.ThrowsAsync<FileNotFoundException>(() => store.SetCurrentAsync("v2"));
        Assert.Equal("v1", (await store.GetCurrentAsync())!.State.Version);
    }

    [Fact]
    public async Task Promote_RefusesATamperedVersion_AndKeepsThePointer()
    {
        var store = new ModelStore(container);
        await store.PublishAsync(models.First, version: "v1");
        await store.PublishAsync(models.Second, version: "v2", makeCurrent: false);
        var weights = container.GetBlobClient("v2/model.onnx");
        var bytes = (await weights.DownloadContentAsync()).Value.Content.ToArray();
        bytes[^10] ^= 0xFF;
        await weights.UploadAsync(BinaryData.FromBytes(bytes), overwrite: true);

        var error = await Assert.ThrowsAsync<ModelIntegrityException>(() => store.SetCurrentAsync("v2"));
        Assert.Contains("model.onnx", error.Message, StringComparison.Ordinal);
        Assert.Equal("v1", (await store.GetCurrentAsync())!.State.Version);
    }

    [Fact]
    public async Task PointerToAMissingVersion_IsAClearError()
    {
        var store = new ModelStore(container);
        await container.GetBlobClient(ModelStore.PointerBlobName).UploadAsync(BinaryData.FromString("""{"version":"gone","publishedUtc":"2026-01-01T00:00:00Z"}"""));
        var current = await store.GetCurrentAsync();
        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => store.LoadAsync(current!.State.Version));
        Assert.Contains("manifest.json is missing", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ConcurrentPromotions_NeverLoseAnUpdate()
    {
        var store = new ModelStore(container);
        await store.PublishAsync(models.First, version: "v0");
        string[] versions = ["v1", "v2", "v3", "v4"];
        foreach (var version in versions)
        {
            await store.PublishAsync(models.First, version: version, makeCurrent: false);
        }

        var attempts = await Task.WhenAll(versions.Select(async v =>
        {
            try
            {
                return (Pointer: (CurrentModelPointer?)await new ModelStore(container).SetCurrentAsync(v), Error: (Exception?)null);
            }
            catch (InvalidOperationException e)
            {
                return (Pointer: (CurrentModelPointer?)null, Error: (Exception?)e);
            }
        }));

        // A promotion either wins or says it lost a race; none silently overwrites another.
        Assert.All(attempts.Where(a => a.Error is not null), a => Assert.Contains("changed by another publisher", a.Error!.Message, StringComparison.Ordinal));
        var wins = attempts.Where(a => a.Pointer is not null).Select(a => a.Pointer!).ToList();
        Assert.NotEmpty(wins);
        // The winners form one chain from v0: each one's Previous is the version live when it wrote.
        var live = "v0";
        var remaining = wins.ToList();
        while (remaining.Count > 0)
        {
            var next = remaining.SingleOrDefault(w => w.Previous == live);
            Assert.True(next is not null, $"no winner continues the chain from {live}: a write was lost");
            live = next!.Version;
            remaining.Remove(next);
        }
        Assert.Equal(live, (await store.GetCurrentAsync())!.State.Version);
    }

    [Fact]
    public async Task NamedModels_LiveBesideAnExistingStore_WhichStillServesAsTheDefault()
    {
        // An existing store: the layout from before named models, written blob by blob at the root.
        var legacy = await ModelPackage.LoadAsync(models.First);
        foreach (var file in legacy.Manifest.Files)
        {
            await container.GetBlobClient($"v1/{file.Name}").UploadAsync(BinaryData.FromBytes(legacy.GetFileByName(file.Name)));
        }
        await container.GetBlobClient($"v1/{ModelManifest.FileName}").UploadAsync(BinaryData.FromString((legacy.Manifest with { Version = "v1" }).ToJson()));
        await container.GetBlobClient(ModelStore.PointerBlobName).UploadAsync(BinaryData.FromString("""{"version":"v1","publishedUtc":"2026-01-01T00:00:00Z"}"""));

        var cats = new ModelStore(container, "cats");
        var catsVersion = await cats.PublishAsync(models.Second, version: "v1");

        var defaultStore = new ModelStore(container, ModelNames.Default);
        Assert.Equal("v1", (await defaultStore.GetCurrentAsync())!.State.Version);
        Assert.Equal(legacy.Manifest.Files, (await defaultStore.LoadAsync("v1")).Manifest.Files);
        Assert.Equal(["v1"], (await defaultStore.ListAsync()).Select(m => m.Version));
        Assert.Equal("v1", catsVersion);
        Assert.True(await container.GetBlobClient("cats/current.json").ExistsAsync());
        Assert.True(await container.GetBlobClient("cats/v1/manifest.json").ExistsAsync());
        Assert.Equal((await ModelPackage.LoadAsync(models.Second)).Manifest.Files, (await cats.LoadAsync("v1")).Manifest.Files);
        Assert.Equal(["v1"], (await cats.ListAsync()).Select(m => m.Version));
        Assert.Equal([ModelNames.Default, "cats"], await ModelStore.ListModelsAsync(container));
    }

    [Fact]
    public async Task NamedModels_PromoteAndRollBackAlone()
    {
        var defaultStore = new ModelStore(container);
        await defaultStore.PublishAsync(models.First, version: "d1");
        var dogs = new ModelStore(container, "dogs");
        await dogs.PublishAsync(models.First, version: "v1");
        await dogs.PublishAsync(models.Second, version: "v2");

        var back = await dogs.RollbackAsync();

        Assert.Equal("v1", back.Version);
        Assert.Equal("v2", back.Previous);
        Assert.Equal("v1", (await dogs.GetCurrentAsync())!.State.Version);
        Assert.Equal("d1", (await defaultStore.GetCurrentAsync())!.State.Version);
        Assert.Equal([ModelNames.Default, "dogs"], await ModelStore.ListModelsAsync(container));
        var none = await Assert.ThrowsAsync<InvalidOperationException>(() => defaultStore.RollbackAsync());
        Assert.Contains("no previous version", none.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task NamedModel_AndADefaultVersionOfTheSameName_AreRefused()
    {
        await new ModelStore(container).PublishAsync(models.First, version: "birds");
        var clash = await Assert.ThrowsAsync<InvalidOperationException>(() => new ModelStore(container, "birds").PublishAsync(models.Second));
        Assert.Contains("version named \"birds\"", clash.Message, StringComparison.Ordinal);

        await new ModelStore(container, "fish").PublishAsync(models.Second);
        var reverse = await Assert.ThrowsAsync<InvalidOperationException>(() => new ModelStore(container).PublishAsync(models.First, version: "fish"));
        Assert.Contains("name of a model", reverse.Message, StringComparison.Ordinal);
        Assert.Equal(["birds"], (await new ModelStore(container).ListAsync()).Select(m => m.Version));
    }

    [Theory]
    [InlineData("", "required")]
    [InlineData("Cats", "must start with a lowercase letter")]
    [InlineData("1cats", "must start with a lowercase letter")]
    [InlineData("cats/dogs", "contains '/'")]
    [InlineData("cats-", "must not end with '-'")]
    [InlineData("a234567890123456789012345678901234", "at most 32")]
    public void ModelName_Invalid_SaysWhatIsWrong(string name, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() => new ModelStore(container, name));
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Canary_TenPercent_ThenHundredCompletes_AndRollbackEndsOne()
    {
        var cats = new ModelStore(container, "cats");
        await cats.PublishAsync(models.First, version: "v1");
        await cats.PublishAsync(models.Second, version: "v2", makeCurrent: false);

        var canary = await cats.PromoteAsync("v2", 10);
        Assert.Equal("v1", canary.Version);
        Assert.Equal(new CanaryRelease("v2", 10), canary.Canary);
        Assert.Equal(new CanaryRelease("v2", 10), (await cats.GetCurrentAsync())!.State.Canary);

        var ended = await cats.RollbackAsync();
        Assert.Equal("v1", ended.Version);
        Assert.Null(ended.Canary);
        Assert.Null((await cats.GetCurrentAsync())!.State.Canary);

        await cats.PromoteAsync("v2", 10);
        var complete = await cats.PromoteAsync("v2", 100);
        Assert.Equal("v2", complete.Version);
        Assert.Equal("v1", complete.Previous);
        Assert.Null((await cats.GetCurrentAsync())!.State.Canary);
        var pointerJson = (await container.GetBlobClient("cats/current.json").DownloadContentAsync()).Value.Content.ToString();
        Assert.DoesNotContain("canary", pointerJson, StringComparison.Ordinal);

        var same = await Assert.ThrowsAsync<InvalidOperationException>(() => cats.PromoteAsync("v2", 10));
        Assert.Contains("current version already", same.Message, StringComparison.Ordinal);
    }
}
