using System.Diagnostics;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Training;

[Collection(TorchTests.Collection)]
public sealed class TransferTrainerTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>A random-init torchvision ResNet-18 at 64 px: fast, and enough to prove the loop learns.</summary>
    private static readonly TrainingOptions Small = new()
    {
        Backbone = "random:resnet18",
        InputSize = 64,
        BatchSize = 8,
        Epochs = 6,
        Patience = 0,
        LinearProbe = false, // these tests cover the epoch loop; the probe has its own tests
        ProbeInitialisation = false, // from a random head, so the epochs (not the start) are what a test sees
    };

    private readonly List<string> folders = [];

    [Fact]
    public async Task Head_DefaultBackbone_LearnsSeparableShapes_OnFeaturesThatMatchTorchSharp()
    {
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var options = new TrainingOptions { Epochs = 20, LearningRate = 3e-3, Patience = 0, LinearProbe = false };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        var watch = Stopwatch.StartNew();
        using var result = await new TransferTrainer().TrainAsync(dataset, options, null, null);

        var epochSeconds = result.History.Average(h => h.Seconds);
        output.WriteLine($"features: {result.FeatureSeconds:F2} s for 24 images at 224 px ({24 / result.FeatureSeconds:F1} images/s); head epoch {epochSeconds * 1000:F1} ms; total {watch.Elapsed.TotalSeconds:F1} s");
        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: {h.TrainLoss:F3} {h.TrainAccuracy:F2} {h.ValidationLoss:F3} {h.ValidationAccuracy:F2}")));
        Assert.True(result.FeatureParityRelativeDifference <= 1e-4, $"parity {result.FeatureParityRelativeDifference}");
        Assert.True(result.History[^1].TrainAccuracy >= 0.9, $"train accuracy {result.History[^1].TrainAccuracy}");
        Assert.Equal(BackboneCatalog.DefaultId, result.Manifest.Backbone);
        Assert.Equal(OnnxResNetImporter.MeanImageFileName, result.Manifest.Preprocessing.MeanImageFile);
        Assert.NotNull(result.MeanImage);
        Assert.Equal(dataset.Validation.Count, result.ValidationPredictions.Count);
        Assert.Equal(dataset.DataHash, result.Manifest.Training!.DataHash);
        Assert.NotEmpty(result.VerificationInputs);
    }

    [Fact]
    public async Task Head_CachedFeatures_EqualTorchSharpBackboneFeatures()
    {
        TorchRuntime.EnsureInitialized();
        using var shapes = new SyntheticShapes(perClass: 3, size: 64);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var trainer = new TransferTrainer();
        var setup = trainer.CreateModel(Small, dataset.Labels.Count);
        using var model = setup.Model;
        model.eval();
        var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
        var loader = new TrainingData(dataset, new ImageDecoder(), preprocessor.DecodeShorterSide, [], null);
        var cache = await loader.ExtractFeaturesAsync(model, preprocessor, batchSize: 4, default);

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
    [InlineData(TrainingMode.Finetune, OptimizerKind.AdamW)]
    [InlineData(TrainingMode.Full, OptimizerKind.Sgd)]
    public async Task FinetuneAndFull_LearnSeparableShapes(TrainingMode mode, OptimizerKind optimizer)
    {
        using var shapes = new SyntheticShapes(perClass: 12, size: 64);
        var options = Small with { Mode = mode, Optimizer = optimizer, Epochs = 8, LearningRate = optimizer == OptimizerKind.Sgd ? 0.02 : 3e-3, BackboneLrFactor = 0.3 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        using var result = await new TransferTrainer().TrainAsync(dataset, options, null, null);

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
        var options = Small with { Mode = TrainingMode.Finetune, Epochs = 2 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        var trainer = new TransferTrainer();
        Dictionary<string, float[]> before;
        using (var fresh = trainer.CreateModel(options, 3).Model)
        {
            before = fresh.state_dict().Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.data<float>().ToArray());
        }
        using var result = await trainer.TrainAsync(dataset, options, null, null);
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
        var options = Small with { Mode = mode, Epochs = 2, HeadKind = Heads.HeadKind.Mlp, HiddenSize = 32 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        using var first = await new TransferTrainer().TrainAsync(dataset, options, null, null);
        using var second = await new TransferTrainer().TrainAsync(dataset, options, null, null);

        Assert.Equal(first.History.Select(h => (h.TrainLoss, h.ValidationLoss)), second.History.Select(h => (h.TrainLoss, h.ValidationLoss)));
        AssertSameWeights(first.Model, second.Model);
    }

    [Fact]
    public async Task Resume_AfterCancellation_GivesTheSameResultAsAnUninterruptedRun()
    {
        using var shapes = new SyntheticShapes(perClass: 6, size: 64);
        var options = Small with { Epochs = 5, HeadKind = Heads.HeadKind.Mlp, HiddenSize = 32, Dropout = 0.3 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        using var uninterrupted = await new TransferTrainer().TrainAsync(dataset, options, null, null);

        var checkpoints = NewFolder();
        using var cancel = new CancellationTokenSource();
        var cancelAfterEpoch2 = new SyncProgress<TrainingProgress>(p =>
        {
            if (p.Phase == TrainingPhase.EpochCompleted && p.Epoch == 2)
            {
                cancel.Cancel();
            }
        });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new TransferTrainer().TrainAsync(dataset, options, cancelAfterEpoch2, checkpoints, cancellationToken: cancel.Token));
        Assert.True(File.Exists(Path.Combine(checkpoints, "resume.json")));

        using var resumed = await new TransferTrainer().TrainAsync(dataset, options, null, checkpoints, resume: true);

        Assert.Equal(2, resumed.ResumedFromEpoch);
        Assert.Equal(uninterrupted.History.Select(h => (h.TrainLoss, h.ValidationLoss)), resumed.History.Select(h => (h.TrainLoss, h.ValidationLoss)));
        Assert.Equal(uninterrupted.BestEpoch, resumed.BestEpoch);
        AssertSameWeights(uninterrupted.Model, resumed.Model);
    }

    [Fact]
    public async Task Resume_RefusesOtherOptions()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 64);
        var options = Small with { Epochs = 1 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, options.ToDatasetOptions());
        var checkpoints = NewFolder();
        using (await new TransferTrainer().TrainAsync(dataset, options, null, checkpoints))
        {
        }
        var error = await Assert.ThrowsAsync<TrainingException>(() => new TransferTrainer().TrainAsync(dataset, options with { LearningRate = 0.5 }, null, checkpoints, resume: true));
        Assert.Contains("different training options", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EarlyStopping_StopsAndKeepsTheBestEpoch()
    {
        // Validation images carry the wrong labels (val/circle holds squares, ...), so learning the
        // training set makes validation loss rise: the run must stop and keep its best epoch.
        var root = NewFolder();
        SyntheticShapes.Write(root, perClass: 6, size: 64, seed: 1, subfolder: "train");
        SyntheticShapes.Write(root, perClass: 3, size: 64, seed: 2, subfolder: "val", labelsOnDisk: ["square", "triangle", "circle"]);
        var options = Small with { Epochs = 30, Patience = 2, LearningRate = 1e-2 };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(root, options.ToDatasetOptions());
        using var result = await new TransferTrainer().TrainAsync(dataset, options, null, null);

        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: {h.TrainLoss:F3} {h.ValidationLoss:F3}")));
        Assert.True(result.StoppedEarly);
        Assert.Equal(result.BestEpoch + options.Patience, result.History.Count);
        var best = result.History.MinBy(h => h.ValidationLoss)!;
        Assert.Equal(best.Epoch, result.BestEpoch);
        Assert.Equal(best.ValidationLoss, result.Manifest.Metrics!.Loss!.Value, 5);
    }

    public void Dispose()
    {
        foreach (var folder in folders)
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private string NewFolder()
    {
        var folder = Path.Combine(Path.GetTempPath(), $"train-{Guid.NewGuid():N}");
        folders.Add(folder);
        return folder;
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
