using System.Buffers.Binary;
using System.Text;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using TorchSharp.PyBridge;

namespace ServerlessClassifier.ModelCore.Tests.Features;

/// <summary>The feature files (safetensors, read back by TorchSharp.PyBridge's independent reader) and the blob feature store against Azurite.</summary>
[Collection(TorchTests.Collection)]
public sealed class FeatureStoreTests
{
    private static readonly float[] Values = [.. Enumerable.Range(0, 12).Select(i => i * 0.5f - 2.25f)];

    [Fact]
    public void Write_IsReadBackByTorchSharpsSafetensorsReader_AndByOurs()
    {
        var metadata = new Dictionary<string, string> { ["format"] = FeatureStore.FormatName, ["images"] = """[["c/a.png","v1"]]""" };
        var bytes = SafeTensorsFile.Write("features", Values, [3, 4], metadata);

        Assert.Equal(0, (int)(BinaryPrimitives.ReadUInt64LittleEndian(bytes) % 8)); // data 8-byte aligned
        TorchRuntime.EnsureInitialized();
        using (var stream = new MemoryStream(bytes))
        {
            var tensors = Safetensors.LoadStateDict(stream);
            var tensor = Assert.Single(tensors).Value;
            Assert.Equal([3L, 4L], tensor.shape);
            Assert.Equal(Values, tensor.data<float>().ToArray());
            tensor.Dispose();
        }
        var read = SafeTensorsFile.Read(bytes, "features", "test file");
        Assert.Equal([3L, 4L], read.Shape);
        Assert.Equal(Values, read.Values);
        Assert.Equal(metadata, read.Metadata);
    }

    [Fact]
    public void Read_NamesWhatIsWrongWithAFile()
    {
        var good = SafeTensorsFile.Write("features", Values, [3, 4], new Dictionary<string, string>());
        var truncated = good[..^4];
        var hugeHeader = (byte[])good.Clone();
        BinaryPrimitives.WriteUInt64LittleEndian(hugeHeader, ulong.MaxValue);
        var notJson = (byte[])good.Clone();
        notJson[8] = (byte)'!';

        Assert.Contains("shorter than the 8-byte header length", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(good.AsSpan(0, 5), "features", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("do not hold shape [3, 4]", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(truncated, "features", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("does not fit the file", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(hugeHeader, "features", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("not valid JSON", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(notJson, "features", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("no tensor \"other\"", Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Read(good, "other", "f")).Message, StringComparison.Ordinal);
        Assert.Contains("not a feature file", Assert.Throws<InvalidDataException>(() => FeatureStore.Parse(good, "f", 4)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Store_ReadsRowsOfTheWantedVersionsOnly_AcrossFiles()
    {
        var container = await TestStorage.CreateContainerAsync("features");
        try
        {
            var store = new FeatureStore(container);
            var key = new string('a', 64);
            await store.WriteAsync(key, "run1-00000", [new("c/a.png", "v1"), new("c/b.png", "v1"), new("c/c.png", "v1")], Values, 4);
            await store.WriteAsync(key, "run2-00000", [new("c/b.png", "v2")], new float[] { 9, 9, 9, 9 }, 4);
            await store.WriteAsync(new string('b', 64), "other-00000", [new("c/a.png", "v1")], new float[] { 7, 7, 7, 7 }, 4); // another backbone's

            var wanted = new Dictionary<string, string> { ["c/a.png"] = "v1", ["c/b.png"] = "v2", ["c/d.png"] = "v1" };
            var rows = new Dictionary<string, float[]>();
            var summary = await store.ReadAsync(key, 4, image =>
            {
                if (wanted.GetValueOrDefault(image.Name) != image.Version)
                {
                    return null;
                }
                var row = new float[4];
                rows[image.Name] = row;
                return row;
            });

            Assert.Equal(new FeatureReadSummary(2, 2), summary);
            Assert.Equal(Values[..4], rows["c/a.png"]);
            Assert.Equal([9f, 9f, 9f, 9f], rows["c/b.png"]); // the new version's row, not the stale one
            Assert.DoesNotContain("c/d.png", rows.Keys);
            var wrongWidth = await Assert.ThrowsAsync<InvalidDataException>(() => store.ReadAsync(key, 5, _ => null));
            Assert.Contains("not [3, 5]", wrongWidth.Message, StringComparison.Ordinal);
            await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync("../x", "f", [], ReadOnlyMemory<float>.Empty, 4));
            await Assert.ThrowsAsync<ArgumentException>(() => store.WriteAsync(key, "../f", [], ReadOnlyMemory<float>.Empty, 4));
            Assert.Equal(new FeatureReadSummary(0, 0), await new FeatureStore(TestStorage.CreateServiceClient().GetBlobContainerClient("absent-" + Guid.NewGuid().ToString("N")[..8])).ReadAsync(key, 4, _ => null));
        }
        finally
        {
            await container.DeleteAsync();
        }
    }

    [Fact]
    public void Parse_RefusesImagesMetadataThatIsNotNameVersionPairs()
    {
        var bytes = SafeTensorsFile.Write("features", Values, [3, 4], new Dictionary<string, string> { ["format"] = FeatureStore.FormatName, ["images"] = """[["only-a-name"]]""" });
        var error = Assert.Throws<InvalidDataException>(() => FeatureStore.Parse(bytes, "f", 4));
        Assert.Contains("[name, version]", error.Message, StringComparison.Ordinal);
        Assert.Equal("{", Encoding.UTF8.GetString(bytes, 8, 1));
    }
}
