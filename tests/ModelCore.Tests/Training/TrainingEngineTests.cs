using System.Diagnostics;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Runtime;
using Xunit.Abstractions;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>The engine's pipeline on synthetic shapes: head mode's features, the epoch loop of finetune and full, determinism, resume and early stopping.</summary>
[Collection(TorchTests.Collection)]
public sealed class TrainingEngineTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Head_DefaultBackbone_FitsSeparableShapes_OnFeaturesThatMatchTorchSharp_AndWritesTheVerifiedPackage()
    {
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var plan = new HeadPlan { Precision = EngineRuns.Fp32 };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var watch = Stopwatch.StartNew();
        using var result = await EngineRuns.TrainAsync(plan, dataset);

        output.WriteLine($"features: {result.FeatureSeconds:F2} s for 24 images at 224 px; total {watch.Elapsed.TotalSeconds:F1} s; out-of-fold accuracy {result.Validation.Accuracy:P1}");
        Assert.True(result.FeatureParityRelativeDifference <= 1e-4, $"parity {result.FeatureParityRelativeDifference}");
        Assert.True(result.Validation.Accuracy >= 0.9, $"out-of-fold accuracy {result.Validation.Accuracy}");
        Assert.Equal(BackboneCatalog.DefaultId, result.Manifest.Backbone);
        Assert.Equal(OnnxResNetImporter.MeanImageFileName, result.Manifest.Preprocessing.MeanImageFile);
        Assert.Equal(dataset.Train.Count + dataset.Validation.Count, result.ValidationPredictions.Count);
        Assert.Equal(dataset.DataHash, result.Manifest.Training!.DataHash);
        // The package on disk is the result: hashes verified on load, the graph checked against the model at export.
        var package = await ModelPackage.LoadAsync(result.Folder);
        Assert.Equal(result.Manifest.Files, package.Manifest.Files);
        Assert.NotNull(package.FindFile(ModelFileRoles.MeanImage));
        Assert.True(package.Manifest.Verification!.MaxProbabilityDifference <= package.Manifest.Verification.Tolerance);
    }

    [Fact]
    public async Task Head_CachedFeatures_EqualTorchSharpBackboneFeatures()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 64);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var (setup, preprocessor, cache) = await EngineRuns.FeaturesAsync(EngineRuns.Head, dataset, batchSize: 4);
        using var model = setup.Model;

        var decoder = new ImageDecoder();
        var worst = 0.0;
        for (var i = 0; i < dataset.Train.Count; i++)
        {
            using var image = decoder.Decode(await dataset.Train[i].ReadAsync(default));
            using var mode = inference_mode();
            using var features = model.Backbone.call(tensor(preprocessor.Preprocess(image), [1, 3, 64, 64]));
            var expected = features.data<float>().ToArray();
            var scale = expected.Max(Math.Abs);
            for (var f = 0; f < cache.NumFeatures; f++)
            {
                worst = Math.Max(worst, Math.Abs(expected[f] - cache.Train[(i * cache.NumFeatures) + f]) / scale);
            }
        }
        output.WriteLine($"max relative difference over {dataset.Train.Count} images: {worst:E2}");
        Assert.True(worst <= 1e-4, $"relative difference {worst}");
    }

    [Theory]
    [InlineData(TrainingMode.Finetune)]
    [InlineData(TrainingMode.Full)]
    public async Task FinetuneAndFull_LearnSeparableShapes(TrainingMode mode)
    {
        using var shapes = new SyntheticShapes(perClass: 12, size: 64);
        EpochPlan plan = mode == TrainingMode.Finetune ? EngineRuns.Finetune : EngineRuns.Full;
        plan = plan with { Epochs = 8, LearningRate = 3e-3, BackboneLrFactor = 0.3, Start = HeadStart.Random };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var result = await EngineRuns.TrainAsync(plan, dataset);

        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: {h.TrainLoss:F3} {h.TrainAccuracy:F2} {h.ValidationLoss:F3} {h.ValidationAccuracy:F2} lr {h.LearningRate:E1} {h.Seconds:F2}s")));
        // A loop that learns overfits a tiny separable set: train accuracy reaches 0.9, or the loss falls at least 3-fold.
        Assert.True(result.History.Max(h => h.TrainAccuracy) >= 0.9 || result.History[^1].TrainLoss <= result.History[0].TrainLoss / 3,
            $"train accuracy {result.History.Max(h => h.TrainAccuracy)}, loss {result.History[0].TrainLoss} -> {result.History[^1].TrainLoss}");
        Assert.Equal(mode.ToString().ToLowerInvariant(), result.Manifest.Training!.Mode);
    }

    [Fact]
    public async Task Finetune_KeepsFrozenStagesUnchanged()
    {
        using var shapes = new SyntheticShapes(perClass: 4, size: 64);
        // From a random head, so the epochs (not the start) are the kept model.
        var plan = EngineRuns.Finetune with { Epochs = 2, Start = HeadStart.Random };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var before = EngineRuns.InitialWeights(plan, 3);
        using var result = await EngineRuns.TrainAsync(plan, dataset);
        var after = result.Model.state_dict();

        // layer1..3 and the stem: weights and BatchNorm statistics untouched; layer4 and the head moved.
        Assert.Equal(before["backbone.layer3.1.bn2.running_mean"], after["backbone.layer3.1.bn2.running_mean"].data<float>().ToArray());
        Assert.Equal(before["backbone.conv1.weight"], after["backbone.conv1.weight"].data<float>().ToArray());
        Assert.NotEqual(before["backbone.layer4.1.conv2.weight"], after["backbone.layer4.1.conv2.weight"].data<float>().ToArray());
        Assert.NotEqual(before["head.fc.weight"], after["head.fc.weight"].data<float>().ToArray());
    }

    [Theory]
    [InlineData(TrainingMode.Finetune)]
    [InlineData(TrainingMode.Full)] // batches decoded from the files every epoch
    public async Task SameSeed_GivesIdenticalWeightsAndHistory(TrainingMode mode)
    {
        using var shapes = new SyntheticShapes(perClass: 6, size: 64);
        EpochPlan plan = mode == TrainingMode.Finetune ? EngineRuns.Finetune : EngineRuns.Full;
        plan = plan with { Epochs = 2, Start = HeadStart.Random };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var first = await EngineRuns.TrainAsync(plan, dataset);
        using var second = await EngineRuns.TrainAsync(plan, dataset);

        Assert.Equal(first.History.Select(h => (h.TrainLoss, h.ValidationLoss)), second.History.Select(h => (h.TrainLoss, h.ValidationLoss)));
        AssertSameWeights(first.Model, second.Model);
    }

    [Theory]
    [InlineData(null)]
    [InlineData(0.5)] // weight averaging: the checkpoint keeps the start's weights and the running mean as well
    public async Task Resume_AfterCancellation_GivesTheSameResultAsAnUninterruptedRun(double? interpolation)
    {
        using var shapes = new SyntheticShapes(perClass: 6, size: 64);
        // A probe start: later epochs are compared with the start's per-image validation losses, which the checkpoint keeps.
        var plan = EngineRuns.Finetune with { Epochs = 5, RefitHead = false, WeightInterpolation = interpolation, AveragedModelNeedsMargin = interpolation is null };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var uninterrupted = await EngineRuns.TrainAsync(plan, dataset);

        var checkpoints = EngineRuns.NewFolder("checkpoints");
        using var cancel = new CancellationTokenSource();
        var cancelAfterEpoch2 = new SyncProgress<TrainingProgress>(p =>
        {
            if (p.Phase == TrainingPhase.EpochCompleted && p.Epoch == 2)
            {
                cancel.Cancel();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            EngineRuns.TrainAsync(plan, dataset, cancelAfterEpoch2, new TrainingRun { CheckpointDirectory = checkpoints }, cancel.Token));
        Assert.True(File.Exists(Path.Combine(checkpoints, RunCheckpoint.FileName)));

        using var resumed = await EngineRuns.TrainAsync(plan, dataset, run: new TrainingRun { CheckpointDirectory = checkpoints, Resume = true });

        Assert.Equal(2, resumed.ResumedFromEpoch);
        Assert.Equal(uninterrupted.History.Select(h => (h.TrainLoss, h.ValidationLoss)), resumed.History.Select(h => (h.TrainLoss, h.ValidationLoss)));
        Assert.Equal(uninterrupted.BestEpoch, resumed.BestEpoch);
        Assert.Equal(uninterrupted.History.Select(h => h.LossBelowStart), resumed.History.Select(h => h.LossBelowStart));
        Assert.Equal(uninterrupted.Manifest.Training!.KeptEpochReason, resumed.Manifest.Training!.KeptEpochReason);
        Assert.Equal(interpolation is null ? null : 5, resumed.Manifest.Training!.AveragedEpochs);
        AssertSameWeights(uninterrupted.Model, resumed.Model);
    }

    [Fact]
    public async Task Resume_RefusesAnotherPlan_NamingTheSetting_AndOtherData()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 64);
        var plan = EngineRuns.Finetune with { Epochs = 1, Start = HeadStart.Random, RefitHead = false };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var checkpoints = EngineRuns.NewFolder("checkpoints");
        using (await EngineRuns.TrainAsync(plan, dataset, run: new TrainingRun { CheckpointDirectory = checkpoints }))
        {
        }
        var resume = new TrainingRun { CheckpointDirectory = checkpoints, Resume = true };

        var error = await Assert.ThrowsAsync<TrainingException>(() => EngineRuns.TrainAsync(plan with { LearningRate = 0.5 }, dataset, run: resume));
        Assert.Contains("another plan (learning rate was 0.001, not 0.5)", error.Message, StringComparison.Ordinal);
        error = await Assert.ThrowsAsync<TrainingException>(() => EngineRuns.TrainAsync(new FullPlan { Backbone = plan.Backbone, InputSize = 64, Precision = EngineRuns.Fp32 }, dataset, run: resume));
        Assert.Contains("another plan (mode was finetune, not full)", error.Message, StringComparison.Ordinal);

        File.Copy(Directory.GetFiles(shapes.Root, "*.png", SearchOption.AllDirectories)[0], Path.Combine(shapes.Root, "circle", "extra.png"));
        var more = await EngineRuns.LoadAsync(shapes.Root, plan);
        error = await Assert.ThrowsAsync<TrainingException>(() => EngineRuns.TrainAsync(plan, more, run: resume));
        Assert.Contains("was made with other data", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EarlyStopping_StopsAfterPatienceEpochsWithoutALowerLoss_AndKeepsTheLowestEpochAgainstARandomStart()
    {
        // Validation images carry the wrong labels (val/circle holds squares, ...), so learning the training set makes the
        // validation loss rise: the run must stop and keep the lowest of the start (epoch 0, a random head: no margin to
        // clear) and its epochs.
        var root = EngineRuns.NewFolder("shapes");
        SyntheticShapes.Write(root, perClass: 6, size: 64, seed: 1, subfolder: "train");
        SyntheticShapes.Write(root, perClass: 3, size: 64, seed: 2, subfolder: "val", labelsOnDisk: ["square", "triangle", "circle"]);
        var plan = EngineRuns.Full with { Epochs = 30, Patience = 2, LearningRate = 1e-2, Start = HeadStart.Random };
        var dataset = await EngineRuns.LoadAsync(root, plan);
        var (progress, messages) = EngineRuns.Messages();
        using var result = await EngineRuns.TrainAsync(plan, dataset, progress);

        var startLoss = double.Parse(messages.Single(m => m.StartsWith("Start (epoch 0)", StringComparison.Ordinal)).Split(' ')[5], System.Globalization.CultureInfo.InvariantCulture);
        output.WriteLine($"0: {startLoss:F3}\n" + string.Join("\n", result.History.Select(h => $"{h.Epoch}: {h.TrainLoss:F3} {h.ValidationLoss:F3}")) + $"\nkept {result.BestEpoch}");
        Assert.True(result.StoppedEarly);
        double[] losses = [startLoss, .. result.History.Select(h => h.ValidationLoss)];
        Assert.Equal(Array.IndexOf(losses, losses.Min()), result.BestEpoch);
        Assert.Equal(result.BestEpoch + plan.Patience, result.History.Count);
        var bestLoss = result.BestEpoch == 0 ? startLoss : result.History[result.BestEpoch - 1].ValidationLoss;
        // The manifest's calibration starts from the kept epoch's validation loss.
        Assert.Equal(bestLoss, result.Manifest.Training!.Calibration!.NllBefore, 3);
    }

    private static void AssertSameWeights(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        Assert.Equal(a.Keys.Order(StringComparer.Ordinal), b.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, tensor) in a)
        {
            Assert.True(tensor.eq(b[name]).all().item<bool>(), $"{name} differs");
        }
    }
}
