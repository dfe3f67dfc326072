using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>
/// Files that are not what the import takes, made by Debian's PyTorch as users make them: a whole pickled
/// model, a state_dict of an architecture the registry lacks, and bytes that are no checkpoint at all.
/// Each error says what the file is and how to export a state_dict. Plus the names-and-shapes reading
/// that tells the architecture before the tensors are read, and torchvision's old DenseNet names.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class StateDictFileTests(ITestOutputHelper output) : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("state-dict-files-").FullName;

    [Fact]
    public void WholePickledModel_IsRefused_SayingSoAndHowToSaveAStateDict()
    {
        var path = Path.Combine(ReferencePython.Cached("make_architecture_reference.py", "whole-model", "resnet18"), "resnet18.pth");

        var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.CreateClassifier(path, HeadSpec.Linear(3)));
        output.WriteLine(error.Message);
        Assert.Contains("whole pickled model (torch.save(model, path)), not a state_dict", error.Message, StringComparison.Ordinal);
        Assert.Contains("torch.save(model.state_dict(), \"vgg16.pth\")", error.Message, StringComparison.Ordinal);
        Assert.Equal(error.Message, Assert.Throws<InvalidDataException>(() => TorchVisionWeights.DetectArchitecture(path)).Message);
    }

    [Fact]
    public void StateDictOfAnotherArchitecture_IsRefused_NamingTheSupportedOnes()
    {
        var path = Path.Combine(ReferencePython.Cached("make_architecture_reference.py", "state-dict-of", "mobilenet_v3_small"), "mobilenet_v3_small.pth");

        var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.CreateClassifier(path, HeadSpec.Linear(3)));
        output.WriteLine(error.Message);
        Assert.Contains("match no supported torchvision architecture (resnet18, resnet34, resnet50, resnet101, resnet152, vgg11, vgg11_bn", error.Message, StringComparison.Ordinal);
        Assert.Contains("densenet201", error.Message, StringComparison.Ordinal);
        Assert.Contains("'classifier.0.bias', 'classifier.0.weight'", error.Message, StringComparison.Ordinal); // what the file holds
        Assert.Contains("torch.save(torchvision.models.vgg16(weights=\"DEFAULT\").state_dict(), \"vgg16.pth\")", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ResNetWithAnUnknownBlockLayout_IsRefused_NamingTheLayoutFound()
    {
        using var model = new ImageClassifier(BackboneCatalog.Create("resnet34"), HeadSpec.Linear(3));
        var names = TorchVisionWeights.ToTorchVisionStateDict(model).Where(p => !p.Key.StartsWith("layer3.5.", StringComparison.Ordinal)).ToDictionary(p => p.Key, p => p.Value);

        var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.DetectArchitecture(names));
        Assert.Contains("found Basic blocks [3, 4, 5, 3] in layer1..layer4", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BytesThatAreNoCheckpoint_AreRefused_SayingWhatIsExpected()
    {
        var path = Path.Combine(folder, "notes.pth");
        File.WriteAllText(path, "these are my notes, not weights");

        var error = Assert.Throws<InvalidDataException>(() => TorchVisionWeights.ReadShapes(path));
        Assert.Contains("neither a torch.save pickle of a state_dict nor a safetensors file", error.Message, StringComparison.Ordinal);
        Assert.Contains("torch.save(model.state_dict()", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ReadShapes_OfAPickleAndOfSafetensors_GiveTheNamesAndShapesOfTheStateDict()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(BackboneCatalog.Create("densenet121"), HeadSpec.Linear(3));
        var expected = TorchVisionWeights.ToTorchVisionStateDict(model).ToDictionary(p => p.Key, p => p.Value.shape);
        var safetensors = Path.Combine(folder, "densenet121.safetensors");
        TorchVisionWeights.SaveSafetensors(model, safetensors);

        Assert.Equal(expected, TorchVisionWeights.ReadShapes(safetensors));
        Assert.Same(BackboneCatalog.Architecture("densenet121"), TorchVisionWeights.DetectArchitecture(safetensors));
        var pickle = TorchVisionWeights.ReadShapes(TorchVisionFixture.WeightsPath);
        Assert.Equal(new long[] { 64, 3, 7, 7 }, pickle["conv1.weight"]);
        Assert.Same(ResNetArchitecture.ResNet18, TorchVisionWeights.DetectArchitecture(TorchVisionFixture.WeightsPath));
    }

    [Fact]
    public void DenseNetStateDictWithTorchvisionsOldNames_LoadsAsTheNewNames()
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(4);
        using var model = new ImageClassifier(BackboneCatalog.Create("densenet121"), HeadSpec.Linear(3));
        model.eval();
        // Before torchvision 0.3 a dense layer's modules were norm.1, relu.1, conv.1, norm.2, ...
        var legacy = TorchVisionWeights.ToTorchVisionStateDict(model).ToDictionary(
            p => System.Text.RegularExpressions.Regex.Replace(p.Key, @"(denselayer\d+\.(?:norm|conv))([12])\.", "$1.$2."), p => p.Value);
        Assert.Contains("features.denseblock1.denselayer1.norm.1.weight", legacy.Keys);

        Assert.Same(BackboneCatalog.Architecture("densenet121"), TorchVisionWeights.DetectArchitecture(legacy));
        manual_seed(5);
        using var reloaded = new ImageClassifier(BackboneCatalog.Create("densenet121"), HeadSpec.Linear(3));
        TorchVisionWeights.Load(reloaded, legacy);
        reloaded.eval();
        using var scope = NewDisposeScope();
        using var mode = inference_mode();
        var input = randn(1, 3, 64, 64);
        Assert.True(model.call(input).eq(reloaded.call(input)).all().item<bool>(), "logits differ after loading the old names");
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
