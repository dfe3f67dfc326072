using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using TorchSharp;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>Head mode's linear probe end to end on synthetic shapes (random-init ResNet-18 at 64 px: fast).</summary>
[Collection(TorchTests.Collection)]
public sealed class ProbeTrainingTests(ITestOutputHelper output)
{
    [Fact]
    public async Task FlipFeatures_AreTheFeaturesOfTheMirroredImage()
    {
        TorchRuntime.EnsureInitialized();
        using var shapes = new SyntheticShapes(perClass: 2, size: 64);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var (setup, preprocessor, cache) = await EngineRuns.FeaturesAsync(EngineRuns.Head, dataset, batchSize: 3, flip: true);
        using var model = setup.Model;

        Assert.NotNull(cache.TrainFlipped);
        Assert.Equal(cache.Train.Length, cache.TrainFlipped.Length);
        Assert.Equal(cache.Validation.Length, cache.ValidationFlipped!.Length);
        var decoder = new ImageDecoder();
        double worst = 0, unlike = 0;
        for (var i = 0; i < dataset.Train.Count; i++)
        {
            using var image = decoder.Decode(await dataset.Train[i].ReadAsync(default));
            // Mirror the pixels by hand (not through the code under test).
            using var mirror = image.Clone();
            for (var y = 0; y < image.Height; y++)
            {
                for (var x = 0; x < image.Width; x++)
                {
                    mirror[x, y] = image[image.Width - 1 - x, y];
                }
            }
            using var mode = inference_mode();
            using var features = model.Backbone.call(tensor(preprocessor.Preprocess(mirror), [1, 3, 64, 64]));
            var expected = features.data<float>().ToArray();
            var scale = expected.Max(Math.Abs);
            for (var f = 0; f < cache.NumFeatures; f++)
            {
                var index = (i * cache.NumFeatures) + f;
                worst = Math.Max(worst, Math.Abs(expected[f] - cache.TrainFlipped[index]) / scale);
                unlike = Math.Max(unlike, Math.Abs(cache.Train[index] - cache.TrainFlipped[index]) / scale);
            }
        }
        output.WriteLine($"flipped features vs the mirror image's: {worst:E2}; vs the unflipped image's: {unlike:E2}");
        Assert.True(worst <= 1e-4, $"{worst}");
        Assert.True(unlike > 1e-2, $"{unlike}"); // the shapes sit off-centre: mirroring changes the features
    }

    [Fact]
    public void PooledStages_AreTheLastStagePooled_ThenTheStageBeforeItPooled()
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(3);
        using var model = new ImageClassifier(BackboneCatalog.Create("resnet18"), HeadSpec.Linear(3) with { PooledStages = 2 });
        model.eval();
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var images = randn(2, 3, 64, 64);
        var both = model.Backbone.call(images);
        // By hand, from the backbone's named stages (not through the code under test's forward).
        var children = model.Backbone.named_children().ToDictionary(c => c.name, c => (nn.Module<Tensor, Tensor>)c.module);
        var x = children["maxpool"].call(children["relu"].call(children["bn1"].call(children["conv1"].call(images))));
        var layer3 = children["layer3"].call(children["layer2"].call(children["layer1"].call(x)));
        var layer4 = children["layer4"].call(layer3);
        var expected = cat([layer4.mean([2, 3]), layer3.mean([2, 3])], 1);

        Assert.Equal([2L, 768L], both.shape);
        var worst = both.sub(expected).abs().max().item<float>();
        output.WriteLine($"max |difference| {worst:E2}");
        Assert.True(worst < 1e-5, $"{worst}");
    }

    [Fact]
    public async Task Finetune_StartsFromTheProbe_NotFromARandomHead()
    {
        // A learning rate of 1e-9: the one epoch changes nothing, so its validation figures are those of the starting head.
        using var shapes = new SyntheticShapes(perClass: 10, size: 64);
        var plan = new FinetunePlan { Epochs = 1, LearningRate = 1e-9, Patience = 0, Start = HeadStart.Probe, Precision = EngineRuns.Fp32 };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var fromProbe = await EngineRuns.TrainAsync(plan, dataset);
        using var fromRandom = await EngineRuns.TrainAsync(plan with { Start = HeadStart.Random }, dataset);

        var (probe, random) = (fromProbe.History[0], fromRandom.History[0]);
        output.WriteLine($"from the probe: val loss {probe.ValidationLoss:F3} acc {probe.ValidationAccuracy:P0}; from a random head: val loss {random.ValidationLoss:F3} acc {random.ValidationAccuracy:P0}");
        Assert.True(probe.ValidationAccuracy >= 0.8, $"{probe.ValidationAccuracy}");
        Assert.True(random.ValidationLoss > probe.ValidationLoss + 0.3, $"{random.ValidationLoss} vs {probe.ValidationLoss}");
    }

    [Fact]
    public async Task HeadMode_FitsTheProbeOnEveryImage_AndTheExportStillMatchesTorchSharp()
    {
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var dataset = await EngineRuns.LoadAsync(shapes.Root, EngineRuns.Head);
        using var result = await EngineRuns.TrainAsync(EngineRuns.Head with { MirrorFeatures = true }, dataset);

        var probe = result.Manifest.Training!.Probe;
        Assert.NotNull(probe);
        var calibration = result.Manifest.Training.Calibration!;
        output.WriteLine($"probe {probe.Seconds:F2} s, L2 {probe.Lambda:G3}, T {calibration.Temperature:F3}, ECE {calibration.EceBefore:F3} -> {calibration.EceAfter:F3}, rows {probe.Rows}, OOF accuracy {result.Validation.Accuracy:P1}");
        var images = dataset.Train.Count + dataset.Validation.Count;
        Assert.Equal(images, probe.Images);
        // --flip makes mirror images a candidate beside the plain rows; the rows are those of the chosen one.
        Assert.Contains(probe.FeatureChoices, c => c.Flipped);
        Assert.Contains(probe.FeatureChoices, c => !c.Flipped);
        Assert.Equal(Assert.Single(probe.FeatureChoices, c => c.Chosen).Flipped, probe.FlipFeatures);
        Assert.Equal(probe.FlipFeatures ? 2 * images : images, probe.Rows);
        Assert.Equal(images, result.ValidationPredictions.Count); // every image scored out-of-fold
        Assert.Equal(images, result.Manifest.Metrics!.Samples);
        Assert.True(calibration.EceAfter <= calibration.EceBefore + 1e-9, $"{calibration.EceBefore} -> {calibration.EceAfter}");
        // The temperature served never makes the held-out (cross-fitted) log-loss worse than T = 1.
        output.WriteLine(calibration.Decision);
        Assert.NotNull(calibration.HeldOutNll);
        Assert.True(calibration.TemperatureKept ? calibration.HeldOutNll < calibration.NllBefore : calibration.Temperature == 1, $"{calibration}");
        Assert.Equal(("out-of-fold", images), (calibration.Evidence, calibration.Images));
        Assert.True(result.Validation.Accuracy >= 0.8, $"out-of-fold accuracy {result.Validation.Accuracy}");
        // Every stage's seconds, in order (the benchmark's step times come from here).
        Assert.Equal(["inputs", "fit", "calibration", "out-of-distribution", "export and parity check", "precision (int8 build and check)", "save"], result.Steps.Select(s => s.Step));
        Assert.All(result.Steps, s => Assert.True(s.Seconds >= 0));
        Assert.True(result.Steps[0].Seconds >= result.FeatureSeconds!.Value - 0.01, "the inputs step holds the feature pass");

        Assert.Equal(2, result.Manifest.Head.PooledStages); // layer4 and layer3 by default in head mode
        Assert.Equal(512 + 256, result.Model.Backbone.NumFeatures);
        // The served graph, as packaged: the same features, and checked against the trained model at export.
        using (var engine = new OnnxEngine(await File.ReadAllBytesAsync(Path.Combine(result.Folder, ModelCheckpoint.OnnxFileName)), OnnxEngineOptions.Default))
        {
            Assert.Equal(512 + 256, engine.NumFeatures);
        }
        var verified = result.Manifest.Verification!;
        output.WriteLine($"export: max |dp| {verified.MaxProbabilityDifference:E2} over {verified.Images} inputs");
        Assert.True(verified.Images > 0);
        Assert.True(verified.MaxProbabilityDifference <= OnnxExport.DefaultTolerance);
    }
}
