using System.Text;
using System.Text.Json.Nodes;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Checkpoints;

[Collection(TorchTests.Collection)]
public sealed class ModelCheckpointTests : IDisposable
{
    private static readonly string[] SampleLabels = ["cat", "dog", "fox", "owl"];

    private readonly string folder = Path.Combine(Path.GetTempPath(), $"checkpoint-{Guid.NewGuid():N}");

    public ModelCheckpointTests() => TorchRuntime.EnsureInitialized();

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task SaveThenLoad_GivesSamePredictionsBitForBit()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3));
        using var _ = model;
        var saved = ModelCheckpoint.Save(model, manifest, folder, [MeanImageFile()]);

        var package = await ModelPackage.LoadAsync(folder);
        using var loaded = ModelCheckpoint.CreateTorchModel(package);

        Assert.Equal(saved.ToJson(), package.Manifest.ToJson());
        Assert.Equal(["cat", "dog", "fox"], package.Manifest.Labels);
        Assert.Equal(OnnxResNetImporter.LoadMeanImage(PreprocessPath), package.ReadMeanImage());
        manual_seed(7);
        using var input = randn(2, 3, 224, 224) * 50;
        using var mode = inference_mode();
        using var expected = model.forward(input);
        using var actual = loaded.forward(input);
        Assert.Equal(expected.data<float>().ToArray(), actual.data<float>().ToArray());

        // Saving the loaded model again writes the same weight bytes.
        var again = Path.Combine(folder, "again");
        var resaved = ModelCheckpoint.Save(loaded, package.Manifest, again, [MeanImageFile()]);
        Assert.Equal(saved.FindFile(ModelFileRoles.Weights)!.Sha256, resaved.FindFile(ModelFileRoles.Weights)!.Sha256);
    }

    [Fact]
    public async Task SaveThenLoad_KeepsTheHead()
    {
        var kind = HeadKind.Linear;
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(4) with { PooledStages = 2 }, "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest with { Labels = ["a", "b", "c", "d"] }, folder);
        using var loaded = ModelCheckpoint.CreateTorchModel(await ModelPackage.LoadAsync(folder));
        Assert.Equal(kind, loaded.HeadSpec.Kind);
        Assert.Equal(2, loaded.HeadSpec.PooledStages);
        Assert.Equal(4, loaded.NumClasses);
    }

    [Fact]
    public async Task Load_RefusesWeightsThatDoNotMatchTheManifestHash()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3));
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder, [MeanImageFile()]);
        var weights = Path.Combine(folder, ModelCheckpoint.WeightsFileName);
        var bytes = await File.ReadAllBytesAsync(weights);
        bytes[bytes.Length / 2] ^= 0x40;
        await File.WriteAllBytesAsync(weights, bytes);

        var error = await Assert.ThrowsAsync<ModelIntegrityException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains(ModelCheckpoint.WeightsFileName, error.Message, StringComparison.Ordinal);
        Assert.Contains("SHA-256", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_RefusesTruncatedWeights()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        var weights = Path.Combine(folder, ModelCheckpoint.WeightsFileName);
        var bytes = await File.ReadAllBytesAsync(weights);
        await File.WriteAllBytesAsync(weights, bytes[..(bytes.Length - 1000)]);

        var error = await Assert.ThrowsAsync<ModelIntegrityException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("bytes, the manifest says", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_RefusesAManifestFromANewerSchema()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        await EditManifest(json => json["schemaVersion"] = ModelManifest.CurrentSchemaVersion + 1);

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("schemaVersion 2 is not supported", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("labels")]
    [InlineData("head")]
    [InlineData("preprocessing")]
    [InlineData("backbone")]
    public async Task Load_RefusesANullWhereTheSchemaAllowsNone_NamingTheSchema(string property)
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        await EditManifest(json => json[property] = null);

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("does not match schema", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_RefusesANullFileEntry()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        await EditManifest(json => json["files"]!.AsArray().Add(null));

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("null entry", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("nosuchlabel", 0.5)]
    [InlineData("LABEL0", 1.5)]
    public async Task Load_RefusesClassThresholdsOfUnknownLabelsOrOutsideZeroToOne(string label, double threshold)
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        var first = manifest.Labels[0];
        await EditManifest(json => json["classThresholds"] = new System.Text.Json.Nodes.JsonObject
        {
            ["goal"] = "f1",
            ["thresholds"] = new System.Text.Json.Nodes.JsonObject { [label == "LABEL0" ? first : label] = threshold },
        });

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("classThresholds names", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../outside.bin")]
    [InlineData("/etc/passwd")]
    [InlineData("..")]
    public async Task Load_RefusesFileNamesThatLeaveTheFolder(string name)
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        await EditManifest(json => json["files"]![0]!["name"] = name);

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.Contains("not a plain file name", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Load_RefusesLabelsThatDoNotMatchTheHead()
    {
        var (model, manifest) = CreateDefaultModel(HeadSpec.Linear(3), "resnet18");
        using var _ = model;
        ModelCheckpoint.Save(model, manifest, folder);
        await EditManifest(json => json["labels"] = new JsonArray("cat", "dog"));

        var error = await Assert.ThrowsAsync<ModelFormatException>(() => ModelPackage.LoadAsync(folder));
        Assert.True(error.Message.Contains("2 labels but the head has 3 outputs", StringComparison.Ordinal), error.Message);
    }

    private static string PreprocessPath => Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.PreprocessFileName);

    private static ModelFileContent MeanImageFile() =>
        new(ModelFileRoles.MeanImage, OnnxResNetImporter.MeanImageFileName, MeanImage.ToBytes(OnnxResNetImporter.LoadMeanImage(PreprocessPath)));

    private static (ImageClassifier Model, ModelManifest Manifest) CreateDefaultModel(HeadSpec head, string backbone = "onnx-resnet18")
    {
        manual_seed(3);
        var isDefault = backbone == BackboneCatalog.DefaultId;
        var model = new ImageClassifier(
            isDefault ? OnnxResNetImporter.LoadBackbone(Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.ModelFileName)) : BackboneCatalog.Create(backbone),
            head);
        model.eval();
        var manifest = new ModelManifest
        {
            Backbone = backbone,
            Head = head,
            Labels = [.. SampleLabels.Take(head.NumClasses)],
            Preprocessing = isDefault ? OnnxResNetImporter.Preprocessing : ModelCore.Imaging.PreprocessingConfig.TorchVision,
            ConfidenceThreshold = 0.4,
        };
        return (model, manifest);
    }

    private async Task EditManifest(Action<JsonNode> edit)
    {
        var path = Path.Combine(folder, ModelManifest.FileName);
        var json = JsonNode.Parse(await File.ReadAllTextAsync(path))!;
        edit(json);
        await File.WriteAllTextAsync(path, json.ToJsonString(), Encoding.UTF8);
    }
}
