using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>timm's contract tests, per architecture: random init, a small 2x3x64x64 batch.</summary>
[Collection(TorchTests.Collection)]
public sealed class ResNetContractTests
{
    public static TheoryData<string> Architectures => new(ResNetArchitecture.All.Select(a => a.Name));

    [Theory]
    [MemberData(nameof(Architectures))]
    public void Features_HaveNumFeaturesColumns(string name)
    {
        using var model = Create(name, classes: 4);
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var features = model.Backbone.ForwardFeatures(Batch());
        Assert.Equal(new long[] { 2, model.Backbone.NumFeatures }, features.shape);
        Assert.Equal(new long[] { 2, 4 }, model.call(Batch()).shape);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void ResetHead_ChangesLogitsSize(string name)
    {
        using var model = Create(name, classes: 4);
        model.ResetHead(new HeadSpec(HeadKind.Mlp, NumClasses: 7, HiddenSize: 16));
        model.eval();
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        Assert.Equal(new long[] { 2, 7 }, model.call(Batch()).shape);
        model.ResetHead(HeadSpec.Linear(2));
        Assert.Equal(new long[] { 2, 2 }, model.call(Batch()).shape);
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void SaveThenLoad_GivesEqualLogits(string name)
    {
        using var model = Create(name, classes: 4);
        using var stream = new MemoryStream();
        TorchVisionWeights.SaveSafetensors(model, stream);
        stream.Position = 0;

        manual_seed(99);
        using var reloaded = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.All.Single(a => a.Name == name)), HeadSpec.Linear(4));
        var report = TorchVisionWeights.Load(reloaded, stream);
        Assert.Equal(name, report.Architecture.Name);
        Assert.Empty(report.Missing);
        reloaded.eval();

        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var input = Batch();
        Assert.True(model.call(input).eq(reloaded.call(input)).all().item<bool>(), "logits differ after save and load");
    }

    [Theory]
    [MemberData(nameof(Architectures))]
    public void DetectArchitecture_FromOwnKeys(string name)
    {
        using var model = Create(name, classes: 4);
        Assert.Equal(name, TorchVisionWeights.DetectArchitecture(TorchVisionWeights.ToTorchVisionStateDict(model).Keys).Name);
    }

    private static ImageClassifier Create(string name, int classes)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(7);
        var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.All.Single(a => a.Name == name)), HeadSpec.Linear(classes));
        model.eval();
        return model;
    }

    private static Tensor Batch()
    {
        using var generator = new Generator(seed: 3);
        return randn([2, 3, 64, 64], generator: generator);
    }
}
