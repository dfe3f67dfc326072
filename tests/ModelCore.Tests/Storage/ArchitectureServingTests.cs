using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Storage;

/// <summary>
/// Each architecture of the registry as the Functions app serves it: a model of it (random init, 64 px input) saved
/// with its verified model.onnx, published to the test Azurite's model store, loaded back with only the serving
/// files and run by the serving pipeline (the app's model provider does exactly <see cref="ModelStore.LoadAsync"/>
/// with <see cref="ModelPackage.ServingRoles"/>, then <see cref="ClassificationPipeline.CreateServing"/>), answering
/// with the probabilities TorchSharp computes for that image. Each model (a VGG's is 1.1 GB with its ONNX graph) is
/// written, published and deleted in its own test. The app's functions over a published model are tested in
/// tests/Functions.Tests, which has no TorchSharp.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ArchitectureServingTests(ITestOutputHelper output)
{
    /// <summary>
    /// Every run: the smallest ResNets and DenseNet. The VGGs and AlexNet, whose 4,096-wide classifier makes each model
    /// 0.5 to 1.1 GB to write, publish and read back (45 to 50 s each here), are served in the full run; every run still
    /// serves their trained models through the same pipeline from their package (tests/TrainJob.Tests
    /// ArchitectureTests, classify) and checks their exported graph against TorchSharp (BackboneContractTests).
    /// </summary>
    public static TheoryData<string> EveryRunData => new(ArchitectureMatrix.EveryRun.Where(id => !IsLarge(id)));

    public static TheoryData<string> FullOnlyData => new(BackboneCatalog.TorchVisionIds.Where(id => IsLarge(id) || ArchitectureMatrix.FullOnly.Contains(id)));

    [Theory]
    [MemberData(nameof(EveryRunData))]
    public Task Architecture_PublishedAndLoadedAsTheAppLoadsIt_ServesTorchSharpsProbabilities(string id) => AssertServedAsync(id);

    [Theory]
    [Trait(ArchitectureMatrix.Category, ArchitectureMatrix.Full)]
    [MemberData(nameof(FullOnlyData))]
    public Task Architecture_PublishedAndLoadedAsTheAppLoadsIt_ServesTorchSharpsProbabilities_FullMatrix(string id) => AssertServedAsync(id);

    private static bool IsLarge(string id) => BackboneCatalog.Architecture(id) is ConvNetArchitecture;

    private async Task AssertServedAsync(string id)
    {
        TorchRuntime.EnsureInitialized();
        var architecture = BackboneCatalog.Architecture(id);
        var preprocessing = architecture.Preprocessing(64);
        var preprocessor = new ImagePreprocessor(preprocessing);
        var decoder = new ImageDecoder();
        var labels = TestModels.ColourLabels;
        var png = TestModels.ColourPng(1, seed: 40);
        float[] Input(byte[] bytes)
        {
            using var image = decoder.Decode(bytes);
            return preprocessor.Preprocess(image);
        }

        var folder = Path.Combine(Path.GetTempPath(), $"architecture-serving-{Guid.NewGuid():N}");
        var container = await TestStorage.CreateContainerAsync("models-architecture");
        try
        {
            float[] expected;
            manual_seed(3);
            using (var model = new ImageClassifier(architecture.Create(), HeadSpec.Linear(labels.Length)))
            {
                using (no_grad())
                {
                    // A trained head's weights are larger than a fresh one's: probabilities far from uniform.
                    foreach (var parameter in model.Head.parameters())
                    {
                        parameter.mul_(50);
                    }
                }
                model.eval();
                using var engine = new TorchSharpEngine(model, 64, ownsModel: false);
                expected = engine.PredictProbabilities(Input(png), 1);
                var manifest = new ModelManifest
                {
                    Backbone = id,
                    BackboneSource = "random init (test model)",
                    Head = HeadSpec.Linear(labels.Length),
                    Labels = labels,
                    Preprocessing = preprocessing,
                };
                ModelCheckpoint.SaveForServing(model, manifest, folder, [Input(TestModels.ColourPng(0, seed: 41)), Input(TestModels.ColourPng(2, seed: 42))], meanImage: null);
            }
            var store = new ModelStore(container);
            await store.PublishAsync(folder, version: id);
            Directory.Delete(folder, recursive: true);

            var version = (await store.GetCurrentAsync())!.State.Version;
            var package = await store.LoadAsync(version, ModelPackage.ServingRoles);
            Assert.Equal(package.Manifest.FindFile(ModelFileRoles.Onnx)!.Bytes, package.TotalBytes); // the graph only, not the weights
            using var pipeline = ClassificationPipeline.CreateServing(package);
            var served = pipeline.Classify(png, top: 3);

            var worst = served.Top.Max(t => Math.Abs(t.Probability - expected[Array.IndexOf(labels, t.Label)]));
            output.WriteLine($"{id}: served {string.Join(", ", served.Top.Select(t => $"{t.Label} {t.Probability:F4}"))}; max |served - TorchSharp| = {worst:E2}");
            Assert.Equal(id, version);
            Assert.Equal(id, package.Manifest.Backbone);
            Assert.Equal(labels[Array.IndexOf(expected, expected.Max())], served.Label);
            Assert.InRange(worst, 0, 1e-4);
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
            await container.DeleteIfExistsAsync();
        }
    }
}
