using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Every architecture of the registry through the app: a model of it (random init, 64 px input) saved
/// with its verified model.onnx, published to the test Azurite's model store, loaded by the app's model
/// provider and answering the HTTP function with the probabilities TorchSharp computes for that image.
/// Each model (a VGG's is 1.1 GB with its ONNX graph) is written, published and deleted in its own test.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ArchitectureServingTests(ITestOutputHelper output)
{
    public static TheoryData<string> Architectures => new(BackboneCatalog.TorchVisionIds);

    [Theory]
    [MemberData(nameof(Architectures))]
    public async Task Architecture_IsServedByTheHttpFunction_WithTorchSharpsProbabilities(string id)
    {
        TorchRuntime.EnsureInitialized();
        var architecture = BackboneCatalog.Architecture(id);
        var preprocessing = architecture.Preprocessing(64);
        var preprocessor = new ImagePreprocessor(preprocessing);
        var decoder = new ImageDecoder();
        var labels = ServingModelFixture.Labels;
        var png = ServingModelFixture.Image("green", seed: 40);
        float[] Input(byte[] bytes)
        {
            using var image = decoder.Decode(bytes);
            return preprocessor.Preprocess(image);
        }

        var folder = Path.Combine(Path.GetTempPath(), $"functions-architecture-{Guid.NewGuid():N}");
        await using var host = await TestHost.StartAsync();
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
                ModelCheckpoint.SaveForServing(model, manifest, folder, [Input(ServingModelFixture.Image("red", seed: 41)), Input(ServingModelFixture.Image("blue", seed: 42))], meanImage: null);
            }
            await host.Store.PublishAsync(folder, version: id);
            Directory.Delete(folder, recursive: true);

            var result = await host.Function<ClassifyImage>().Run(TestHost.HttpContext(png, query: "?top=3").Request, CancellationToken.None);

            var prediction = Assert.IsType<PredictionDocument>(Assert.IsType<OkObjectResult>(result).Value);
            Assert.Equal("ok", prediction.Status);
            Assert.Equal(id, prediction.ModelVersion);
            var worst = prediction.Top!.Max(t => Math.Abs(t.Probability - expected[Array.IndexOf(labels, t.Label)]));
            output.WriteLine($"{id}: served {string.Join(", ", prediction.Top!.Select(t => $"{t.Label} {t.Probability:F4}"))}; max |served - TorchSharp| = {worst:E2}");
            Assert.Equal(labels[Array.IndexOf(expected, expected.Max())], prediction.Label);
            Assert.InRange(worst, 0, 1e-4);
        }
        finally
        {
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
            await host.Models.DeleteIfExistsAsync();
        }
    }
}
