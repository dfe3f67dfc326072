using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>
/// timm's contract tests, for every architecture of the registry: random init (BatchNorm statistics
/// moved off their defaults), a small 2 x 3 x 64 x 64 batch. One test per architecture builds the model
/// once (a VGG is 550 MB) and checks it all: every run on the smallest member of each family
/// (<see cref="ArchitectureMatrix.EveryRun"/>), the full run on the others.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class BackboneContractTests(ITestOutputHelper output)
{
    [Fact]
    public void TheEveryRunMatrix_HoldsTheFirstMemberOfEachVariant_TrainsEachFamilyInEachMode_AndTheFullRunTheRest()
    {
        Assert.Equal(["resnet18", "resnet50", "vgg11", "vgg11_bn", "alexnet", "densenet121"], ArchitectureMatrix.EveryRun);
        Assert.Equal(BackboneCatalog.TorchVisionIds.Order(StringComparer.Ordinal), ArchitectureMatrix.EveryRun.Concat(ArchitectureMatrix.FullOnly).Order(StringComparer.Ordinal));
        Assert.Equal(BackboneCatalog.TorchVisionIds.Select(id => ArchitectureMatrix.Variant(BackboneCatalog.Architecture(id))).Distinct().Count(), ArchitectureMatrix.EveryRun.Count);
        Assert.Equal([("resnet18", "head"), ("vgg11", "head"), ("alexnet", "head"), ("densenet121", "head"),
            ("resnet50", "finetune"), ("vgg11_bn", "finetune"), ("alexnet", "finetune"), ("densenet121", "finetune")], ArchitectureMatrix.EveryRunTraining);
        Assert.Equal(2 * BackboneCatalog.TorchVisionIds.Count, ArchitectureMatrix.EveryRunTraining.Concat(ArchitectureMatrix.FullOnlyTraining).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(ArchitectureMatrix.EveryRunData), MemberType = typeof(ArchitectureMatrix))]
    public void Architecture_KeepsTheBackboneContract(string id) => AssertKeepsTheContract(id);

    [Theory]
    [Trait(ArchitectureMatrix.Category, ArchitectureMatrix.Full)]
    [MemberData(nameof(ArchitectureMatrix.FullOnlyData), MemberType = typeof(ArchitectureMatrix))]
    public void Architecture_KeepsTheBackboneContract_FullMatrix(string id) => AssertKeepsTheContract(id);

    private void AssertKeepsTheContract(string id)
    {
        var architecture = BackboneCatalog.Architecture(id);
        using var model = Create(id, classes: 4);

        // Features are the replaced layer's input; the head maps them to the classes.
        using (var scope = NewDisposeScope())
        using (inference_mode())
        {
            var features = model.Backbone.ForwardFeatures(Batch());
            Assert.Equal(new long[] { 2, architecture.NumFeatures }, features.shape);
            Assert.Equal(architecture.NumFeatures, model.Backbone.NumFeatures);
            Assert.False(features[0].allclose(features[1]), "different inputs must give different features");
            Assert.Equal(new long[] { 2, 4 }, model.call(Batch()).shape);
        }

        // Every backbone parameter belongs to exactly one part, and the parts' stages are the architecture's, in order.
        var parts = model.Backbone.Parts();
        var inParts = parts.SelectMany(p => p.Module.parameters()).Select(p => p.Handle).ToList();
        Assert.Equal(inParts.Count, inParts.Distinct().Count());
        Assert.Equal(model.Backbone.parameters().Select(p => p.Handle).Order(), inParts.Order());
        Assert.Equal(architecture.StageNames, parts.Select(p => p.Stage).OfType<string>().Distinct());
        Assert.All(architecture.StageNames, stage => Assert.NotEmpty(parts.Where(p => p.Stage == stage).SelectMany(p => p.Module.parameters())));

        // torchvision's names: the head is the replaced layer, and the keys and shapes tell the architecture.
        var names = TorchVisionWeights.ToTorchVisionStateDict(model);
        Assert.Contains(architecture.HeadKey("weight"), names.Keys);
        Assert.DoesNotContain(names.Keys, key => key.StartsWith("backbone.", StringComparison.Ordinal) || key.StartsWith("head.", StringComparison.Ordinal));
        Assert.Same(architecture, TorchVisionWeights.DetectArchitecture(names));

        // Save under torchvision's names, load into a fresh module: equal logits, nothing missing.
        using (var stream = new MemoryStream())
        {
            TorchVisionWeights.SaveSafetensors(model, stream);
            stream.Position = 0;
            manual_seed(99);
            using var reloaded = new ImageClassifier(architecture.Create(), HeadSpec.Linear(4));
            var report = TorchVisionWeights.Load(reloaded, stream);
            Assert.Same(architecture, report.Architecture);
            Assert.Empty(report.Missing);
            Assert.Empty(report.DroppedHeadKeys);
            reloaded.eval();
            using var scope = NewDisposeScope();
            using var mode = inference_mode();
            var input = Batch();
            Assert.True(model.call(input).eq(reloaded.call(input)).all().item<bool>(), "logits differ after save and load");
        }

        // The exported graph: probabilities within 1e-4 of TorchSharp's, and its features output is the backbone's.
        var inputs = Inputs(3);
        var export = OnnxExport.ExportVerified(model, 64, inputs);
        output.WriteLine($"{id}: ONNX {export.Onnx.Length / 1e6:F1} MB, max |p_onnx - p_torch| = {export.MaxAbsDifference:E2}");
        using (var engine = new OnnxEngine(export.Onnx, OnnxEngineOptions.Default))
        using (var mode = inference_mode())
        using (var expected = model.Backbone.forward(tensor(inputs[0], [1, 3, 64, 64])))
        {
            var reference = expected.data<float>().ToArray();
            var features = engine.ExtractFeatures(inputs[0], 1);
            var scale = Math.Max(reference.Max(Math.Abs), 1e-12f);
            Assert.True(features.Zip(reference, (a, b) => Math.Abs(a - b)).Max() <= 1e-4 * scale, "the graph's features differ from the backbone's");
        }

        // Resetting the head changes the logits' size.
        model.ResetHead(HeadSpec.Linear(7));
        model.eval();
        using (var scope = NewDisposeScope())
        using (inference_mode())
        {
            Assert.Equal(new long[] { 2, 7 }, model.call(Batch()).shape);
        }
    }

    [Theory]
    [InlineData(64)]  // features 1 x 1, pooled up to 6 x 6: the pooling matrix
    [InlineData(127)] // 3 x 3 to 6 x 6: the pooling matrix (6 is no multiple of 3's windows)
    [InlineData(224)] // 6 x 6: nothing to pool
    [InlineData(415)] // 12 x 12 to 6 x 6: an AveragePool
    public void AdaptivePooling_ExportMatchesTorchSharp_AtEveryInputSize(int size)
    {
        using var model = Create("alexnet", classes: 3);
        var inputs = Enumerable.Range(0, 2).Select(i =>
        {
            using var generator = new Generator(seed: (ulong)(10 + i));
            using var image = randn([1, 3, size, size], generator: generator);
            return image.data<float>().ToArray();
        }).ToList();
        var export = OnnxExport.ExportVerified(model, size, inputs);
        output.WriteLine($"alexnet at {size}: max |p_onnx - p_torch| = {export.MaxAbsDifference:E2}");
        Assert.InRange(export.MaxAbsDifference, 0, OnnxExport.DefaultTolerance);
    }

    [Fact]
    public void InputSizeBelowAnArchitecturesMinimum_IsNamed()
    {
        Assert.Null(BackboneCatalog.Architecture("alexnet").InputSizeProblem(63));
        Assert.Contains("at least 63", BackboneCatalog.Architecture("alexnet").InputSizeProblem(62), StringComparison.Ordinal);
        Assert.Contains("224 x 224 inputs only", BackboneCatalog.Architecture(BackboneCatalog.DefaultId).InputSizeProblem(64), StringComparison.Ordinal);
        Assert.Null(BackboneCatalog.Architecture("vgg16").InputSizeProblem(32));
    }

    private static ImageClassifier Create(string id, int classes)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(7);
        var model = new ImageClassifier(BackboneCatalog.Create(id), HeadSpec.Linear(classes));
        using (no_grad())
        {
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
            // A trained head has larger weights than a fresh one: probabilities far from uniform, so the export check bites.
            foreach (var parameter in model.Head.parameters())
            {
                parameter.mul_(50);
            }
        }
        model.eval();
        return model;
    }

    private static Tensor Batch()
    {
        using var generator = new Generator(seed: 3);
        return randn([2, 3, 64, 64], generator: generator);
    }

    private static List<float[]> Inputs(int count) => [.. Enumerable.Range(0, count).Select(i =>
    {
        using var generator = new Generator(seed: (ulong)(20 + i));
        using var image = randn([1, 3, 64, 64], generator: generator);
        return image.data<float>().ToArray();
    })];
}
