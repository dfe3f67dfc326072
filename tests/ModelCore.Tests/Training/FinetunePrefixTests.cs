using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Prefix;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Fitting;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>Finetune's cached frozen prefix, its start (epoch 0) and its BatchNorm setting, on synthetic shapes (random-init ResNet-18 at 64 px).</summary>
[Collection(TorchTests.Collection)]
public sealed class FinetunePrefixTests(ITestOutputHelper output)
{
    private static readonly FinetunePlan Small = EngineRuns.Finetune;

    [Theory]
    [InlineData("resnet18", 1)]
    [InlineData("resnet18", 2)]
    [InlineData("resnet18", 3)]
    [InlineData("onnx-resnet18", 3)] // top/left padding
    public void PrefixThenSuffix_IsTheWholeBackbone_AndTheOnnxPrefixIsTorchSharps(string architecture, int stages)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(5);
        var resnet = (TorchVisionResNet)BackboneCatalog.Create(architecture);
        using var model = new ImageClassifier(resnet, HeadSpec.Linear(3) with { PooledStages = 2 });
        model.eval();
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var images = randn(3, 3, 64, 64);
        var whole = resnet.call(images);
        var prefix = resnet.ForwardPrefix(images, stages);
        var split = resnet.ForwardSuffix(prefix, stages);
        var worst = split.sub(whole).abs().max().item<float>();

        using var engine = new PrefixEngine(OnnxExport.ExportPrefix(model, 64, stages), 64);
        var (onnx, shape) = engine.Run(images.data<float>().ToArray(), 3);
        var reference = prefix.data<float>().ToArray();
        var onnxWorst = reference.Zip(onnx, (a, b) => Math.Abs(a - b)).Max() / reference.Max(Math.Abs);
        output.WriteLine($"{architecture} from stage {stages}: suffix(prefix) vs forward {worst:E2}; ONNX prefix {string.Join("x", shape)} vs TorchSharp {onnxWorst:E2}");

        Assert.Equal([3L, 768L], split.shape);
        Assert.True(worst < 1e-5, $"{worst}");
        Assert.Equal(prefix.shape.Skip(1).Select(d => (int)d), shape);
        Assert.True(onnxWorst < 1e-4, $"{onnxWorst}");
    }

    [Fact]
    public void Suffix_RefusesAHeadThatReadsStagesBeforeThePrefixOutput_AndThePlanSaysSo()
    {
        TorchRuntime.EnsureInitialized();
        using var model = new ImageClassifier(new TorchVisionResNet(ResNetArchitecture.ResNet18), HeadSpec.Linear(3) with { PooledStages = 3 });
        var resnet = (TorchVisionResNet)model.Backbone;
        Assert.True(resnet.SuffixCanPool(2)); // layer2's output is the prefix output, layer3 and layer4 follow
        Assert.False(resnet.SuffixCanPool(3)); // layer2's pooled output would be needed from inside the prefix
        Assert.Throws<ArgumentOutOfRangeException>(() => new SuffixClassifier(model, 3));

        // The resolved plan says what runs: the cached prefix (and the head refit it allows) only where the suffix sees every pooled stage.
        var cached = (FinetunePlan)Small.Resolve();
        Assert.Equal((4, true), (cached.PrefixViews, cached.RefitHead));
        var uncached = (FinetunePlan)(Small with { PooledStages = 3 }).Resolve();
        Assert.Equal((0, false), (uncached.PrefixViews, uncached.RefitHead));
        var error = Assert.Throws<PlanException>(() => (Small with { PooledStages = 3, PrefixViews = 4 }).Resolve());
        Assert.Equal("cached prefix views", error.Setting);
        error = Assert.Throws<PlanException>(() => (Small with { Stages = ["layer1", "layer4"], RefitHead = true }).Resolve());
        Assert.Equal("head refit", error.Setting); // layer1 trains: nothing before it to cache, so no refit either
    }

    [Fact]
    public void PrefixBatches_AreTheCachedRecords_InChannelsLastOrderWhenAsked()
    {
        TorchRuntime.EnsureInitialized(); // before anything of the training library loads TorchSharp
        var directory = Path.Combine(Path.GetTempPath(), $"prefix-batches-{Guid.NewGuid():N}");
        int[] shape = [3, 2, 4]; // (C, H, W) of one record
        var length = shape[0] * shape[1] * shape[2];
        var values = Enumerable.Range(0, 3 * length).Select(i => (float)i).ToArray(); // small integers: float16 holds them exactly
        try
        {
            var train = new PrefixCache(directory, records: 2, recordLength: length, halfPrecision: true);
            var validation = new PrefixCache(directory, records: 1, recordLength: length, halfPrecision: false);
            train.Write(0, values.AsSpan(0, length));
            train.Write(1, values.AsSpan(length, length));
            validation.Write(0, values.AsSpan(2 * length, length));
            using var batches = new PrefixBatches(train, validation, views: 1, channelsLast: true, shape, [0], [1], ["a"], ["b"], [], CPU);
            using var scope = NewDisposeScope();
            foreach (var (batch, expected) in new[] { (batches.PlainTrainBatch(0, 1), values[..length]), (batches.ValidationBatch(0, 1), values[(2 * length)..]) })
            {
                Assert.Equal([1L, shape[0], shape[1], shape[2]], batch.shape);
                // Channels-last strides: the channel is the innermost dimension in memory, then W, then H.
                Assert.Equal([length, 1L, shape[2] * shape[0], shape[0]], batch.stride());
                Assert.Equal(expected, batch.contiguous().data<float>().ToArray());
            }
            var plainTrain = new PrefixCache(directory, records: 1, recordLength: length, halfPrecision: false);
            var plainValidation = new PrefixCache(directory, records: 1, recordLength: length, halfPrecision: false);
            plainTrain.Write(0, values.AsSpan(0, length));
            using var plain = new PrefixBatches(plainTrain, plainValidation, views: 1, channelsLast: false, shape, [0], [], ["a"], [], [], CPU);
            var plainBatch = plain.PlainTrainBatch(0, 1);
            Assert.Equal([length, shape[1] * shape[2], shape[2], 1L], plainBatch.stride()); // the default: the plain order
            Assert.Equal(values[..length], plainBatch.data<float>().ToArray());
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void PrefixCache_RoundTripsFloat32Exactly_AndFloat16WithinItsRounding_AndLeavesNoFile()
    {
        TorchRuntime.EnsureInitialized(); // before anything of the training library loads TorchSharp
        var directory = Path.Combine(Path.GetTempPath(), $"prefix-cache-{Guid.NewGuid():N}");
        var random = new Random(3);
        var values = Enumerable.Range(0, 2 * 1000).Select(_ => (float)((random.NextDouble() * 20) + 0.01)).ToArray();
        try
        {
            using var exact = new PrefixCache(directory, records: 2, recordLength: 1000, halfPrecision: false);
            using var half = new PrefixCache(directory, records: 2, recordLength: 1000, halfPrecision: true);
            Assert.Empty(Directory.GetFiles(directory)); // unlinked while open: a killed process leaves nothing
            foreach (var cache in new[] { exact, half })
            {
                cache.Write(1, values.AsSpan(1000, 1000)); // out of order
                cache.Write(0, values.AsSpan(0, 1000));
            }
            var back = new float[1000];
            exact.Read(1, back);
            Assert.Equal(values.Skip(1000), back);
            var worst = 0.0;
            for (var record = 0; record < 2; record++)
            {
                half.Read(record, back);
                worst = Math.Max(worst, back.Select((v, i) => Math.Abs(v - values[(record * 1000) + i]) / values[(record * 1000) + i]).Max());
            }
            output.WriteLine($"float16 relative error {worst:E2}; bytes {half.Bytes} vs {exact.Bytes}");
            Assert.True(worst <= Math.Pow(2, -11), $"{worst}");
            Assert.True(worst > 0); // it is float16
            Assert.Equal(exact.Bytes, 2 * half.Bytes);
            Assert.Throws<ArgumentException>(() => half.Write(0, new float[999]));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Augmentation_WithoutMirror_NeverFlips()
    {
        TorchRuntime.EnsureInitialized(); // before anything of the training library loads TorchSharp
        var config = ResNetArchitecture.ResNet18.Preprocessing(32) with { Resize = ServerlessClassifier.ModelCore.Imaging.ResizeMode.Stretch, ResizeSize = 32 };
        using var image = new Image<Rgb24>(32, 32, new Rgb24(255, 255, 255));
        image[2, 5] = new Rgb24(0, 0, 0); // one dark pixel on the left
        var plain = new ImagePreprocessor(config, null).Preprocess(image);
        int Flips(bool mirror)
        {
            // Crops of the whole image (area fraction 1), so mirroring is the only change.
            var augmentation = new Augmentation(config, null, scaleMin: 1, mirror);
            var destination = new float[plain.Length];
            var flips = 0;
            for (var seed = 0; seed < 20; seed++)
            {
                augmentation.Apply(image, new Random(seed), destination);
                flips += destination.SequenceEqual(plain) ? 0 : 1;
            }
            return flips;
        }
        Assert.Equal(0, Flips(mirror: false));
        Assert.InRange(Flips(mirror: true), 3, 17);
    }

    [Fact]
    public async Task Finetune_TrainsOnTheCachedPrefix_ReportsImagesPerSecond_AndExportsTheWholeModel()
    {
        using var shapes = new SyntheticShapes(perClass: 10, size: 64);
        var dataset = await EngineRuns.LoadAsync(shapes.Root, Small);
        var (progress, messages) = EngineRuns.Messages();
        using var result = await EngineRuns.TrainAsync(Small, dataset, progress);

        output.WriteLine(string.Join("\n", messages));
        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: val loss {h.ValidationLoss:F3} acc {h.ValidationAccuracy:P0}, {h.ImagesPerSecond:F1} images/s")));
        Assert.Contains(messages, m => m.StartsWith("Frozen prefix (stem..layer3) of 24 training images x 4 view(s)", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("Head initialised from a linear probe", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.StartsWith("Head refitted as a linear probe on the kept backbone", StringComparison.Ordinal));
        Assert.NotNull(result.Manifest.Training!.Probe);
        // Judged on images the kept backbone never trained on: the validation split, or all of them when the start was kept.
        Assert.Equal(result.BestEpoch == 0 ? dataset.Train.Count + dataset.Validation.Count : dataset.Validation.Count, result.ValidationPredictions.Count);
        Assert.All(result.History, h => Assert.True(h.ImagesPerSecond > 0));
        Assert.Equal(2, result.Manifest.Head.PooledStages); // the same head as head mode's
        Assert.True(result.Validation.Accuracy >= 0.8, $"{result.Validation.Accuracy}");
        // The model takes images (not prefix outputs): its export, checked against it on images, matches it.
        var verified = result.Manifest.Verification!;
        Assert.True(verified.MaxProbabilityDifference <= OnnxExport.DefaultTolerance, $"{verified.MaxProbabilityDifference}");
        using var images = randn(2, 3, 64, 64);
        using (inference_mode())
        using (var logits = result.Model.call(images))
        {
            Assert.Equal([2L, 3L], logits.shape);
        }
    }

    [Fact]
    public async Task Finetune_StartIsACandidate_SoEpochsThatOnlyHurtKeepTheProbe()
    {
        // A learning rate that wrecks the network in one step: no epoch beats the start (the probe).
        using var shapes = new SyntheticShapes(perClass: 10, size: 64);
        var plan = Small with { Epochs = 2, LearningRate = 50 };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var (progress, messages) = EngineRuns.Messages();
        using var result = await EngineRuns.TrainAsync(plan, dataset, progress);

        var start = messages.Single(m => m.StartsWith("Start (epoch 0)", StringComparison.Ordinal));
        output.WriteLine($"{start}\n{string.Join("\n", result.History.Select(h => $"{h.Epoch}: val loss {h.ValidationLoss:F3} acc {h.ValidationAccuracy:P0}"))}; kept {result.BestEpoch}");
        var startLoss = double.Parse(start.Split(' ')[5], System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(0, result.BestEpoch);
        Assert.All(result.History, h => Assert.False(h.ValidationLoss <= startLoss));

        // The start was kept, so the backbone is the pretrained one: the head refit is head mode's probe, judged on every image.
        using var head = await EngineRuns.TrainAsync(EngineRuns.Head, dataset);
        var (refit, probe) = (result.Manifest.Training!.Probe!, head.Manifest.Training!.Probe!);
        var (refitT, probeT) = (result.Manifest.Training.Calibration!.Temperature, head.Manifest.Training.Calibration!.Temperature);
        output.WriteLine($"refit: L2 {refit.Lambda:G3} T {refitT:F3} acc {result.Validation.Accuracy:P1}; head mode: L2 {probe.Lambda:G3} T {probeT:F3} acc {head.Validation.Accuracy:P1}");
        Assert.Equal(dataset.Train.Count + dataset.Validation.Count, result.ValidationPredictions.Count);
        Assert.Equal(probe.Lambda, refit.Lambda);
        Assert.InRange(Math.Abs(probeT - refitT), 0, 0.02);
        Assert.True(result.Validation.Accuracy >= 0.8, $"{result.Validation.Accuracy}");
        // And its features are chosen as head mode chooses them (layer4 alone against layer3+layer4): the same candidates, the same choice.
        output.WriteLine($"refit features {refit.Features}; head mode's {probe.Features}");
        Assert.Equal(2, refit.FeatureChoices.Count);
        Assert.Equal(probe.Features, refit.Features);
        Assert.Equal(probe.FeatureChoices.Select(c => (c.Stages, c.Chosen)), refit.FeatureChoices.Select(c => (c.Stages, c.Chosen)));
    }

    [Fact]
    public async Task Finetune_KeepsTheLowestCalibratedEpochOfThoseClearlyBelowTheStart()
    {
        // A high learning rate: the epochs' heads grow over-confident, which the plain loss punishes and the calibrated one does not.
        using var shapes = new SyntheticShapes(perClass: 10, size: 64);
        var plan = Small with { Epochs = 3, LearningRate = 3e-2, Patience = 0, Selection = EpochSelection.CalibratedLoss };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var result = await EngineRuns.TrainAsync(plan, dataset);

        var training = result.Manifest.Training!;
        var start = (Loss: training.StartValidationLoss!.Value, Calibrated: training.StartCalibratedValidationLoss!.Value);
        output.WriteLine($"start: val loss {start.Loss:F4} calibrated {start.Calibrated:F4}");
        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: val loss {h.ValidationLoss:F4} calibrated {h.CalibratedValidationLoss:F4} below start {h.LossBelowStart:F4} ± {h.LossBelowStartStandardError:F4} clearly {h.ClearlyBelowStart} acc {h.ValidationAccuracy:P0}")));
        output.WriteLine(training.KeptEpochReason);
        Assert.Equal("calibratedLoss", training.EpochSelection);
        double[] calibrated = [start.Calibrated, .. result.History.Select(h => h.CalibratedValidationLoss!.Value)];
        double[] plain = [start.Loss, .. result.History.Select(h => h.ValidationLoss)];
        // A temperature fitted on the logits never does worse than T = 1 on them.
        Assert.All(calibrated.Zip(plain), p => Assert.True(p.First <= p.Second + 1e-6, $"{p.First} > {p.Second}"));
        // The paired difference is on the calibrated per-image losses: its mean is the difference of the calibrated losses.
        Assert.All(result.History, h => Assert.Equal(start.Calibrated - h.CalibratedValidationLoss!.Value, h.LossBelowStart!.Value, 6));
        Assert.Equal(ExpectedKeptEpoch(result.History, h => h.CalibratedValidationLoss!.Value), result.BestEpoch);
        Assert.StartsWith(result.BestEpoch == 0 ? "No epoch beat the start clearly" : $"Kept epoch {result.BestEpoch}:", training.KeptEpochReason, StringComparison.Ordinal);
    }

    [Fact]
    public void KeptReason_NamesTheEpochNearestTheBarInStandardErrors_NotTheLargestDifference()
    {
        // The figures of a bench run (style-shift, layer4 at a tenth of its rate): epoch 3's difference is the largest, but its
        // spread is larger too, so epoch 2 is nearer the 2-standard-error bar.
        static EpochMetrics Epoch(int epoch, double below, double error) =>
            new(epoch, 0.5, 0.9, 1.0, 0.6, 1e-4, 10) { LossBelowStart = below, LossBelowStartStandardError = error, ClearlyBelowStart = false };
        EpochMetrics[] history = [Epoch(1, -0.0410, 0.0500), Epoch(2, 0.0396, 0.0285), Epoch(3, 0.0416, 0.0308)];

        var reason = EpochFitter.KeptReason(EpochSelection.Loss, 0, history, HeadStart.Probe);

        Assert.Equal(
            "No epoch beat the start clearly: the start is kept (the nearest the bar, epoch 2, was 0.0396 ± 0.0285 below it on the validation loss: 1.39 standard errors, 2 needed).",
            reason);
        Assert.Equal(double.PositiveInfinity, EpochFitter.StandardErrorsBelowStart(Epoch(4, 0.01, 0)));
    }

    [Fact]
    public async Task Finetune_AnEpochBelowTheStartByLessThanTheMargin_DoesNotReplaceIt()
    {
        // 21 validation images, 9 of them labelled as another shape: every model's per-image losses spread widely, so epochs
        // whose mean validation loss is below the start's (the probe's) are not clearly below it, and the start is served.
        var root = EngineRuns.NewFolder("shapes");
        SyntheticShapes.Write(root, perClass: 8, size: 64, seed: 1, subfolder: "train");
        SyntheticShapes.Write(root, perClass: 4, size: 64, seed: 2, subfolder: "val");
        var mislabelled = EngineRuns.NewFolder("mislabelled");
        SyntheticShapes.Write(mislabelled, perClass: 3, size: 64, seed: 3, labelsOnDisk: ["square", "triangle", "circle"]);
        foreach (var file in Directory.GetFiles(mislabelled, "*.png", SearchOption.AllDirectories))
        {
            File.Move(file, Path.Combine(root, "val", Path.GetFileName(Path.GetDirectoryName(file))!, "wrong-" + Path.GetFileName(file)));
        }
        var plan = Small with { Epochs = 3, Patience = 0, LearningRate = 1e-2 };
        var dataset = await EngineRuns.LoadAsync(root, plan);
        var (progress, messages) = EngineRuns.Messages();
        using var result = await EngineRuns.TrainAsync(plan, dataset, progress);

        var training = result.Manifest.Training!;
        output.WriteLine($"start: val loss {training.StartValidationLoss:F4}");
        output.WriteLine(string.Join("\n", result.History.Select(h => $"{h.Epoch}: val loss {h.ValidationLoss:F4} below start {h.LossBelowStart:F4} ± {h.LossBelowStartStandardError:F4} clearly {h.ClearlyBelowStart}")));
        output.WriteLine(training.KeptEpochReason);
        // The data give what this test is about: an epoch below the start, but not clearly.
        var close = result.History.Where(h => h.LossBelowStart > 0 && h.ClearlyBelowStart == false).ToList();
        Assert.NotEmpty(close);
        Assert.All(close, h => Assert.True(h.LossBelowStart <= 2 * h.LossBelowStartStandardError));
        Assert.DoesNotContain(result.BestEpoch, close.Select(h => h.Epoch));
        Assert.Equal(ExpectedKeptEpoch(result.History, h => h.ValidationLoss), result.BestEpoch);
        // The log says, epoch by epoch and at the end, what was compared and what was kept.
        Assert.Contains(messages, m => m.StartsWith($"Epoch {close[0].Epoch} against the start: validation loss", StringComparison.Ordinal) && m.EndsWith("not clearly better than the start.", StringComparison.Ordinal));
        Assert.Contains(training.KeptEpochReason, messages);
    }

    [Fact]
    public async Task Finetune_WeightInterpolation_ServesTheStartMovedHalfwayToTheMeanOfTheEpochs()
    {
        // Two epochs at a rate that moves the weights; no refit, so the head served is the interpolated one too. Each epoch's
        // checkpoint holds its own weights, the start's and the running mean: the served model must be start + 0.5 x (mean -
        // start), the mean (e1 + e2) / 2, so every trained weight lies between the start and the fine-tuned weights.
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var plan = Small with { Epochs = 2, LearningRate = 1e-2, RefitHead = false, WeightInterpolation = 0.5, AveragedModelNeedsMargin = false };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var (progress, messages) = EngineRuns.Messages();
        var checkpoints = EngineRuns.NewFolder("checkpoints");
        var copies = EngineRuns.NewFolder("epochs");
        Directory.CreateDirectory(copies);
        void Copy(string folder)
        {
            foreach (var file in Directory.GetFiles(folder, "resume-e*.safetensors"))
            {
                File.Copy(file, Path.Combine(copies, Path.GetFileName(file)), overwrite: true);
            }
        }
        using var result = await EngineRuns.TrainAsync(plan, dataset, progress, new TrainingRun { CheckpointDirectory = checkpoints, CheckpointSaved = Copy });
        output.WriteLine(string.Join("\n", messages));

        var e1 = Load(Path.Combine(copies, "resume-e0001-weights.safetensors"));
        var e2 = Load(Path.Combine(copies, "resume-e0002-weights.safetensors"));
        var start = Load(Path.Combine(copies, "resume-e0002-start.safetensors"));
        var mean = Load(Path.Combine(copies, "resume-e0002-average.safetensors"));
        var served = result.Model.state_dict().Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.data<float>().ToArray());
        var trained = new[] { "backbone.layer4.1.conv2.weight", "backbone.layer4.0.bn1.weight", "head.fc.weight" };
        foreach (var name in trained)
        {
            Assert.True(served.ContainsKey(name) && e1.ContainsKey(name), name);
            Assert.NotEqual(start[name], e1[name]); // it trained
            Assert.NotEqual(e1[name], e2[name]);
            for (var i = 0; i < start[name].Length; i++)
            {
                var expectedMean = (e1[name][i] + e2[name][i]) / 2;
                Assert.True(Math.Abs(mean[name][i] - expectedMean) <= 1e-6 + (1e-5 * Math.Abs(expectedMean)), $"{name}[{i}] mean {mean[name][i]} vs {expectedMean}");
                var expected = start[name][i] + (0.5f * (expectedMean - start[name][i]));
                Assert.True(Math.Abs(served[name][i] - expected) <= 1e-6 + (1e-5 * Math.Abs(expected)), $"{name}[{i}] served {served[name][i]} vs {expected}");
            }
        }
        // Frozen: the earlier stages and every BatchNorm statistic are the start's.
        Assert.Equal(start["backbone.layer4.1.bn2.running_mean"], served["backbone.layer4.1.bn2.running_mean"]);
        var training = result.Manifest.Training!;
        Assert.Equal(2, result.BestEpoch);
        Assert.Equal(2, training.AveragedEpochs);
        Assert.Equal(0.5, training.WeightInterpolation);
        Assert.StartsWith("Kept the mean of epochs 1-2 interpolated 0.5 of the way from the start", training.KeptEpochReason, StringComparison.Ordinal);
        Assert.Contains(training.KeptEpochReason, messages);
        Assert.Equal(4, messages.Count(m => m.StartsWith("Mean of epochs 1-2 at interpolation ", StringComparison.Ordinal)));
        // The served graph is the interpolated model: its export, checked against it on images, matches it.
        Assert.True(result.Manifest.Verification!.MaxProbabilityDifference <= OnnxExport.DefaultTolerance, $"{result.Manifest.Verification.MaxProbabilityDifference}");
    }

    [Fact]
    public async Task Finetune_WeightInterpolation_KeepsTheStartWhenTheAverageIsNotClearlyBetter()
    {
        // A rate that wrecks the network: the average of its epochs, even halfway from the start, is no clear gain.
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var plan = Small with { Epochs = 2, LearningRate = 50, RefitHead = false, WeightInterpolation = 0.5 };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var before = EngineRuns.InitialWeights(plan, 3);
        var (progress, messages) = EngineRuns.Messages();
        using var result = await EngineRuns.TrainAsync(plan, dataset, progress);
        output.WriteLine(string.Join("\n", messages));

        var training = result.Manifest.Training!;
        Assert.Equal(0, result.BestEpoch);
        Assert.Null(training.AveragedEpochs);
        Assert.StartsWith("The start is kept: the mean of epochs 1-2 interpolated 0.5 of the way from the start was not clearly better", training.KeptEpochReason, StringComparison.Ordinal);
        Assert.Equal(before["backbone.layer4.1.conv2.weight"], result.Model.state_dict()["backbone.layer4.1.conv2.weight"].data<float>().ToArray());
    }

    private static Dictionary<string, float[]> Load(string path)
    {
        using var stream = File.OpenRead(path);
        var weights = TorchSharp.PyBridge.Safetensors.LoadStateDict(stream);
        try
        {
            return weights.Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.data<float>().ToArray());
        }
        finally
        {
            foreach (var tensor in weights.Values)
            {
                tensor.Dispose();
            }
        }
    }

    [Fact]
    public void KeepEpoch_NeedsTheDifferenceFromTheStartToExceedTwoStandardErrors()
    {
        double[] start = [1.0, 1.2, 0.8, 1.1, 0.9, 1.0, 1.3, 0.7];
        // Every image 0.05 lower: a clear difference (no spread).
        var even = PairedLosses.Of(start, [.. start.Select(l => l - 0.05)]);
        // Lower by 0.05 on average, but image by image from -0.15 to +0.25: the mean is below 2 standard errors.
        double[] shifts = [0.25, -0.15, 0.2, -0.1, 0.15, -0.05, 0.2, -0.1];
        var noisy = PairedLosses.Of(start, [.. start.Zip(shifts, (l, d) => l - d)]);
        output.WriteLine($"even {even}; noisy {noisy}");

        Assert.Equal(0.05, even.Mean, 9);
        Assert.Equal(0.05, noisy.Mean, 9);
        Assert.True(noisy.Mean > 0 && noisy.Mean <= noisy.Margin, noisy.ToString());
        Assert.True(EpochFitter.KeepEpoch(even, criterion: start.Average() - 0.05, kept: start.Average(), clearOfTheStart: true));
        Assert.False(EpochFitter.KeepEpoch(noisy, criterion: start.Average() - 0.05, kept: start.Average(), clearOfTheStart: true));
        // A random start: any lower epoch replaces it.
        Assert.True(EpochFitter.KeepEpoch(noisy, criterion: start.Average() - 0.05, kept: start.Average(), clearOfTheStart: false));
        // Clearly below the start but not below the kept epoch: the kept epoch stays.
        Assert.False(EpochFitter.KeepEpoch(even, criterion: start.Average() - 0.05, kept: start.Average() - 0.06, clearOfTheStart: true));
    }

    /// <summary>The epoch the rule keeps: the lowest on the criterion of those clearly below the start; 0 (the start) when none is.</summary>
    private static int ExpectedKeptEpoch(IReadOnlyList<EpochMetrics> history, Func<EpochMetrics, double> criterion) =>
        history.Where(h => h.ClearlyBelowStart == true && h.LossBelowStart > 2 * h.LossBelowStartStandardError).OrderBy(criterion).FirstOrDefault()?.Epoch ?? 0;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task UpdateBatchNormStatistics_DecidesWhetherTheUnfrozenStagesRunningStatisticsMove(bool update)
    {
        TorchRuntime.EnsureInitialized();
        using var shapes = new SyntheticShapes(perClass: 4, size: 64);
        var plan = Small with { Epochs = 1, UpdateBatchNormStatistics = update, Start = HeadStart.Random };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        var before = EngineRuns.InitialWeights(plan, 3);
        using var result = await EngineRuns.TrainAsync(plan, dataset);
        var after = result.Model.state_dict();

        Assert.NotEqual(before["backbone.layer4.1.conv2.weight"], after["backbone.layer4.1.conv2.weight"].data<float>().ToArray()); // it trained
        var moved = !before["backbone.layer4.1.bn2.running_mean"].SequenceEqual(after["backbone.layer4.1.bn2.running_mean"].data<float>().ToArray());
        Assert.Equal(update, moved);
    }
}
