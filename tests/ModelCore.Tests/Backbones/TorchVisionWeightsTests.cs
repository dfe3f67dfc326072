using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>Import of a real torchvision checkpoint, compared with PyTorch's own outputs.</summary>
[Collection(TorchTests.Collection)]
public sealed class TorchVisionWeightsTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-4f;

    [Fact]
    public void LoadPth_GivesPyTorchLogits()
    {
        TorchRuntime.EnsureInitialized();
        var (model, report) = TorchVisionWeights.CreateClassifier(TorchVisionFixture.WeightsPath, HeadSpec.Linear(TorchVisionFixture.NumClasses));
        using var _ = model;
        var (input, features, logits) = TorchVisionFixture.ReadReference();
        using (input)
        using (features)
        using (logits)
        {
            Assert.Same(ResNetArchitecture.ResNet18, report.Architecture);
            Assert.Empty(report.Missing);
            Assert.Empty(report.Unexpected);
            Assert.Empty(report.DroppedHeadKeys);

            var (ourFeatures, ourLogits) = Infer(model, input);
            using (ourFeatures)
            using (ourLogits)
            {
                var logitDiff = TorchVisionFixture.MaxAbsDifference(ourLogits, logits);
                var featureDiff = TorchVisionFixture.MaxAbsDifference(ourFeatures, features);
                output.WriteLine($"max |logits - PyTorch| = {logitDiff:E3}; max |features - PyTorch| = {featureDiff:E3}");
                Assert.True(logitDiff < Tolerance, $"logits differ from PyTorch's by {logitDiff}");
                Assert.True(featureDiff < Tolerance, $"features differ from PyTorch's by {featureDiff}");
            }
        }
    }

    [Fact]
    public void LoadPth_KeepsBatchNormCounters()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.ResNet18), HeadSpec.Linear(TorchVisionFixture.NumClasses));
        var file = TorchVisionWeights.ReadStateDict(TorchVisionFixture.WeightsPath);
        try
        {
            TorchVisionWeights.Load(model, file);
            var ours = model.state_dict();
            Assert.Equal(file["bn1.num_batches_tracked"].item<long>(), ours["backbone.bn1.num_batches_tracked"].item<long>());
            Assert.Equal(file["layer4.1.bn2.running_var"].data<float>().ToArray(), ours["backbone.layer4.1.bn2.running_var"].data<float>().ToArray());
        }
        finally
        {
            foreach (var tensor in file.Values)
            {
                tensor.Dispose();
            }
        }
    }

    [Fact]
    public void SafetensorsRoundTrip_GivesEqualLogits()
    {
        TorchRuntime.EnsureInitialized();
        var (model, _) = TorchVisionWeights.CreateClassifier(TorchVisionFixture.WeightsPath, HeadSpec.Linear(TorchVisionFixture.NumClasses));
        using var _model = model;
        var path = Path.Combine(Path.GetTempPath(), $"tv-roundtrip-{Guid.NewGuid():N}.safetensors");
        try
        {
            TorchVisionWeights.SaveSafetensors(model, path);
            var names = TorchVisionWeights.ReadStateDict(path);
            try
            {
                // torchvision's names, as a PyTorch user's load_state_dict expects.
                Assert.Contains("conv1.weight", names.Keys);
                Assert.Contains("layer4.1.bn2.num_batches_tracked", names.Keys);
                Assert.Contains("fc.bias", names.Keys);
                Assert.DoesNotContain(names.Keys, key => key.StartsWith("backbone.", StringComparison.Ordinal) || key.StartsWith("head.", StringComparison.Ordinal));
            }
            finally
            {
                foreach (var tensor in names.Values)
                {
                    tensor.Dispose();
                }
            }

            var (reloaded, report) = TorchVisionWeights.CreateClassifier(path, HeadSpec.Linear(TorchVisionFixture.NumClasses));
            using var _reloaded = reloaded;
            Assert.Empty(report.Missing);
            Assert.Empty(report.DroppedHeadKeys);
            var (input, features, logits) = TorchVisionFixture.ReadReference();
            using (input)
            using (features)
            using (logits)
            {
                var (_, before) = Infer(model, input);
                var (_, after) = Infer(reloaded, input);
                using (before)
                using (after)
                {
                    var diff = TorchVisionFixture.MaxAbsDifference(before, after);
                    output.WriteLine($"max |logits after safetensors round trip - before| = {diff:E3}");
                    Assert.Equal(0f, diff);
                    Assert.True(TorchVisionFixture.MaxAbsDifference(after, logits) < Tolerance);
                }
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void SaveSafetensors_LoadsStrictlyIntoPyTorchsResNet18()
    {
        TorchRuntime.EnsureInitialized();
        var (model, _) = TorchVisionWeights.CreateClassifier(TorchVisionFixture.WeightsPath, HeadSpec.Linear(TorchVisionFixture.NumClasses));
        using var _model = model;
        var path = Path.Combine(Path.GetTempPath(), $"tv-pytorch-{Guid.NewGuid():N}.safetensors");
        try
        {
            TorchVisionWeights.SaveSafetensors(model, path);
            var diff = ReferencePython.Run("check_torchvision_safetensors.py", path, TorchVisionFixture.Directory);
            output.WriteLine($"PyTorch, our safetensors loaded with strict=True: max |logits - reference| = {diff}");
            Assert.True(float.Parse(diff, System.Globalization.CultureInfo.InvariantCulture) < Tolerance, diff);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void LoadIntoANewHead_DropsOnlyHeadKeys_BackboneMatchesPyTorch()
    {
        TorchRuntime.EnsureInitialized();
        string[] expectedMissing = ["head.fc.weight", "head.fc.bias"];
        var (model, report) = TorchVisionWeights.CreateClassifier(TorchVisionFixture.WeightsPath, HeadSpec.Linear(3));
        using var _ = model;
        Assert.Equal(["fc.bias", "fc.weight"], report.DroppedHeadKeys);
        Assert.Equal(expectedMissing, report.Missing);
        Assert.Empty(report.Unexpected);

        var (input, features, logits) = TorchVisionFixture.ReadReference();
        using (input)
        using (features)
        using (logits)
        {
            var (ourFeatures, ourLogits) = Infer(model, input);
            using (ourFeatures)
            using (ourLogits)
            {
                Assert.Equal(new long[] { 2, 3 }, ourLogits.shape);
                var diff = TorchVisionFixture.MaxAbsDifference(ourFeatures, features);
                output.WriteLine($"new head, 3 classes: max |features - PyTorch| = {diff:E3}");
                Assert.True(diff < Tolerance, $"features differ from PyTorch's by {diff}");
            }
        }
    }

    [Fact]
    public void LoadIntoWrongArchitecture_FailsNamingAKey()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.ResNet34), HeadSpec.Linear(TorchVisionFixture.NumClasses));
        using var before = model.Backbone.state_dict()["layer1.0.conv1.weight"].clone();
        var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.Load(model, TorchVisionFixture.WeightsPath));
        output.WriteLine(error.Message);
        Assert.Contains("resnet34", error.Message, StringComparison.Ordinal);
        Assert.Contains("describe resnet18", error.Message, StringComparison.Ordinal);
        Assert.Contains("missing key 'layer1.2.conv1.weight'", error.Message, StringComparison.Ordinal);
        // Nothing was copied: a failed load leaves the model as it was.
        Assert.True(before.eq(model.Backbone.state_dict()["layer1.0.conv1.weight"]).all().item<bool>(), "a failed load changed the weights");
    }

    [Fact]
    public void LoadWithWrongShape_FailsNamingKeyAndBothShapes()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.ResNet18), HeadSpec.Linear(TorchVisionFixture.NumClasses));
        var file = TorchVisionWeights.ReadStateDict(TorchVisionFixture.WeightsPath);
        try
        {
            file["layer2.0.conv1.weight"].Dispose();
            file["layer2.0.conv1.weight"] = zeros(128, 64, 5, 5);
            var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.Load(model, file));
            output.WriteLine(error.Message);
            Assert.Contains("shape mismatch for 'layer2.0.conv1.weight': checkpoint [128, 64, 5, 5], model [128, 64, 3, 3]", error.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("missing", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var tensor in file.Values)
            {
                tensor.Dispose();
            }
        }
    }

    [Fact]
    public void LoadWithUnknownKey_FailsNamingIt()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.ResNet18), HeadSpec.Linear(TorchVisionFixture.NumClasses));
        var file = TorchVisionWeights.ReadStateDict(TorchVisionFixture.WeightsPath);
        try
        {
            file["layer1.0.se.weight"] = zeros(4);
            var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.Load(model, file));
            Assert.Contains("unexpected key 'layer1.0.se.weight'", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var tensor in file.Values)
            {
                tensor.Dispose();
            }
        }
    }

    private static (Tensor Features, Tensor Logits) Infer(ImageClassifier model, Tensor input)
    {
        model.eval();
        using var mode = inference_mode();
        var features = model.Backbone.ForwardFeatures(input);
        var logits = model.Head.call(features);
        return (features, logits);
    }
}
