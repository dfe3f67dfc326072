using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Export;

[Collection(TorchTests.Collection)]
public sealed class OnnxExportTests(ITestOutputHelper output)
{
    private static readonly Lazy<float[]> MeanImageValues = new(() =>
        OnnxResNetImporter.LoadMeanImage(Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.PreprocessFileName)));

    [Fact]
    public void DefaultBackbone_HeadOnly_ExportMatchesTorchSharpOnRealImages()
    {
        using var model = DefaultModel(HeadSpec.Linear(5));
        AssertExportMatches(model, OnnxResNetImporter.Preprocessing, MeanImageValues.Value);
    }

    [Fact]
    public void DefaultBackbone_FineTuned_ExportMatchesTorchSharpOnRealImages()
    {
        using var model = DefaultModel(HeadSpec.Linear(4));
        // Stand in for fine-tuning: move every weight and BatchNorm statistic of the last two stages.
        manual_seed(11);
        using (no_grad())
        {
            foreach (var (name, tensor) in model.state_dict().Where(p => p.Key.StartsWith("backbone.layer3", StringComparison.Ordinal) || p.Key.StartsWith("backbone.layer4", StringComparison.Ordinal)))
            {
                if (tensor.is_floating_point())
                {
                    tensor.mul_(1 + (0.05 * randn_like(tensor)));
                }
            }
        }
        AssertExportMatches(model, OnnxResNetImporter.Preprocessing, MeanImageValues.Value);
    }

    [Theory]
    [InlineData("resnet18", 1)]
    [InlineData("resnet50", 2)]
    public void TorchVisionResNet_ExportMatchesTorchSharpOnRealImages(string backbone, int pooledStages)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(5);
        using var model = new ImageClassifier(BackboneCatalog.Create(backbone), HeadSpec.Linear(3) with { PooledStages = pooledStages });
        RandomizeBatchNormStatistics(model);
        model.eval();
        AssertExportMatches(model, PreprocessingConfig.TorchVision with { InputSize = 128, ResizeSize = 146 }, null);
    }

    [Fact]
    public void Verify_FailsWhenTheGraphDisagreesWithTheModel()
    {
        using var model = DefaultModel(HeadSpec.Linear(3));
        var onnx = OnnxExport.Export(model, 224);
        using var other = DefaultModel(HeadSpec.Linear(3), seed: 99);
        var inputs = RealInputs(OnnxResNetImporter.Preprocessing, MeanImageValues.Value, 2);

        var error = Assert.Throws<OnnxExportException>(() => OnnxExport.Verify(onnx, other, 224, inputs));
        Assert.Contains("disagrees with TorchSharp", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void OnnxEngine_FeaturesOutput_EqualsTheBackboneFeatures()
    {
        using var model = DefaultModel(HeadSpec.Linear(2));
        using var engine = new OnnxEngine(OnnxExport.Export(model, 224), OnnxEngineOptions.Default);
        var input = RealInputs(OnnxResNetImporter.Preprocessing, MeanImageValues.Value, 1)[0];
        var features = engine.ExtractFeatures(input, 1);
        using var mode = inference_mode();
        using var expected = model.Backbone.forward(tensor(input, [1, 3, 224, 224]));
        var reference = expected.data<float>().ToArray();
        Assert.Equal(512, features.Length);
        var scale = reference.Max(Math.Abs);
        Assert.True(features.Zip(reference, (a, b) => Math.Abs(a - b)).Max() <= 1e-4 * scale, "features differ");
    }

    [Fact]
    public void OnnxEngine_BatchEqualsSingleImages()
    {
        using var model = DefaultModel(HeadSpec.Linear(3));
        using var engine = new OnnxEngine(OnnxExport.Export(model, 224), OnnxEngineOptions.Default);
        var inputs = RealInputs(OnnxResNetImporter.Preprocessing, MeanImageValues.Value, 4);
        var batch = engine.PredictProbabilities(inputs.SelectMany(i => i).ToArray(), 4);
        Assert.Equal(12, batch.Length);
        for (var i = 0; i < 4; i++)
        {
            var single = engine.PredictProbabilities(inputs[i], 1);
            for (var c = 0; c < 3; c++)
            {
                Assert.InRange(Math.Abs(batch[(i * 3) + c] - single[c]), 0, 1e-5);
            }
            Assert.InRange(single.Sum(), 0.9999, 1.0001);
        }
    }

    private void AssertExportMatches(ImageClassifier model, PreprocessingConfig preprocessing, float[]? meanImage)
    {
        var inputs = RealInputs(preprocessing, meanImage, 6);
        var result = OnnxExport.ExportVerified(model, preprocessing.InputSize, inputs);
        output.WriteLine($"max |p_onnx - p_torch| = {result.MaxAbsDifference:E2} over {result.Samples} images");
        Assert.Equal(6, result.Samples);
        Assert.InRange(result.MaxAbsDifference, 0, OnnxExport.DefaultTolerance);

        // The served graph ranks the images' classes as TorchSharp does.
        using var served = new OnnxEngine(result.Onnx, OnnxEngineOptions.Default);
        using var reference = new TorchSharpEngine(model, preprocessing.InputSize, ownsModel: false);
        foreach (var input in inputs)
        {
            var a = served.PredictProbabilities(input, 1);
            var b = reference.PredictProbabilities(input, 1);
            Assert.Equal(Array.IndexOf(b, b.Max()), Array.IndexOf(a, a.Max()));
        }
    }

    private static ImageClassifier DefaultModel(HeadSpec head, int seed = 1)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(seed);
        var model = new ImageClassifier(OnnxResNetImporter.LoadBackbone(Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.ModelFileName)), head);
        // A trained head has larger weights than a fresh one; make the softmax far from uniform.
        using (no_grad())
        {
            foreach (var parameter in model.Head.parameters())
            {
                parameter.mul_(20);
            }
        }
        model.eval();
        return model;
    }

    private static void RandomizeBatchNormStatistics(ImageClassifier model)
    {
        using var _ = no_grad();
        foreach (var (name, tensor) in model.state_dict())
        {
            if (name.EndsWith("running_mean", StringComparison.Ordinal))
            {
                tensor.copy_(randn_like(tensor) * 0.1);
            }
            else if (name.EndsWith("running_var", StringComparison.Ordinal))
            {
                tensor.copy_(rand_like(tensor) + 0.5);
            }
        }
    }

    /// <summary>Real emoji, decoded and preprocessed exactly as serving will do it.</summary>
    private static List<float[]> RealInputs(PreprocessingConfig preprocessing, float[]? meanImage, int count)
    {
        var decoder = new ImageDecoder();
        var preprocessor = new ImagePreprocessor(preprocessing, meanImage);
        return [.. TestAssets.SampleEmoji(count).Select(file =>
        {
            using var image = decoder.Decode(File.ReadAllBytes(file));
            return preprocessor.Preprocess(image);
        })];
    }
}
