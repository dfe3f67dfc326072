using System.Diagnostics;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The classifier to train and what describes its input.</summary>
internal sealed record ModelSetup(ImageClassifier Model, PreprocessingConfig Preprocessing, float[]? MeanImage, string BackboneId, string BackboneSource);

/// <summary>Where training batches come from: cached features (head mode) or augmented images.</summary>
internal interface IBatchSource : IDisposable
{
    int[] TrainLabels { get; }

    int[] ValidationLabels { get; }

    IReadOnlyList<string> ValidationSources { get; }

    /// <summary>Inputs and targets of one training batch, on the device, in the caller's dispose scope.</summary>
    (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random);

    /// <summary>Validation inputs [start, start + count), on the device, in the caller's dispose scope.</summary>
    Tensor ValidationBatch(int start, int count);
}

internal sealed class FeatureBatches : IBatchSource
{
    private readonly Tensor train;
    private readonly Tensor validation;

    public FeatureBatches(FeatureCache cache, Device device)
    {
        TrainLabels = cache.TrainLabels;
        ValidationLabels = cache.ValidationLabels;
        ValidationSources = cache.ValidationSources;
        train = tensor(cache.Train, [cache.TrainLabels.Length, cache.NumFeatures]).to(device);
        validation = tensor(cache.Validation, [cache.ValidationLabels.Length, cache.NumFeatures]).to(device);
        targets = tensor(cache.TrainLabels.Select(l => (long)l).ToArray()).to(device);
    }

    private readonly Tensor targets;

    public int[] TrainLabels { get; }

    public int[] ValidationLabels { get; }

    public IReadOnlyList<string> ValidationSources { get; }

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        var index = tensor(indices.Select(i => (long)i).ToArray()).to(train.device);
        return (train.index_select(0, index), targets.index_select(0, index));
    }

    public Tensor ValidationBatch(int start, int count) => validation.narrow(0, start, count);

    public void Dispose()
    {
        train.Dispose();
        validation.Dispose();
        targets.Dispose();
    }
}

internal sealed class ImageBatches(LoadedSplit<Image<Rgb24>> train, LoadedSplit<float[]> validation, Augmentation augmentation, int inputLength, int inputSize, Device device) : IBatchSource
{
    public int[] TrainLabels { get; } = [.. train.Labels];

    public int[] ValidationLabels { get; } = [.. validation.Labels];

    public IReadOnlyList<string> ValidationSources => validation.Sources;

    public IReadOnlyList<float[]> ValidationInputs => validation.Items;

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        // One seed per image, drawn in order, then augment in parallel: deterministic whatever the scheduling.
        var seeds = indices.Select(_ => random.Next()).ToArray();
        var buffer = new float[indices.Length * inputLength];
        Parallel.For(0, indices.Length, i => augmentation.Apply(train.Items[indices[i]], new Random(seeds[i]), buffer.AsSpan(i * inputLength, inputLength)));
        var labels = indices.Select(i => (long)TrainLabels[i]).ToArray();
        return (tensor(buffer, [indices.Length, 3, inputSize, inputSize]).to(device), tensor(labels).to(device));
    }

    public Tensor ValidationBatch(int start, int count)
    {
        var buffer = new float[count * inputLength];
        for (var i = 0; i < count; i++)
        {
            validation.Items[start + i].CopyTo(buffer, i * inputLength);
        }
        return tensor(buffer, [count, 3, inputSize, inputSize]).to(device);
    }

    public void Dispose()
    {
    }
}

public sealed partial class TransferTrainer
{
    private const int EvaluationBatchSize = 64;

    internal ModelSetup CreateModel(TrainingOptions options, int numClasses)
    {
        var head = options.HeadSpec(numClasses);
        // Seed before building: the head's (and a random backbone's) initialisation is then reproducible.
        manual_seed(options.Seed);
        if (options.Backbone == BackboneCatalog.DefaultId)
        {
            if (options.InputSize is { } size && size != OnnxResNetImporter.Preprocessing.InputSize)
            {
                throw new ArgumentException($"{BackboneCatalog.DefaultId} takes {OnnxResNetImporter.Preprocessing.InputSize}x{OnnxResNetImporter.Preprocessing.InputSize} inputs only (its mean image is that size); InputSize {size} is not possible.", nameof(options));
            }
            var directory = options.PretrainedDirectory ?? OnnxResNetImporter.DefaultDirectory;
            var backbone = OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName));
            manual_seed(options.Seed);
            var meanImage = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
            return new ModelSetup(new ImageClassifier(backbone, head), OnnxResNetImporter.Preprocessing, meanImage, BackboneCatalog.DefaultId,
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (ResNet18.onnx, ImageNet)");
        }
        var preprocessing = TorchVisionPreprocessing(options.InputSize ?? 224);
        if (BackboneCatalog.Ids.Contains(options.Backbone))
        {
            LogRandomBackbone(options.Backbone);
            return new ModelSetup(new ImageClassifier(BackboneCatalog.Create(options.Backbone), head), preprocessing, null, options.Backbone, "random initialisation (no pretrained weights)");
        }
        if (File.Exists(options.Backbone))
        {
            var loaded = TorchVisionWeights.CreateClassifier(options.Backbone, head);
            var id = ((TorchVisionResNet)loaded.Model.Backbone).Architecture.Name;
            return new ModelSetup(loaded.Model, preprocessing, null, id, $"torchvision weights {Path.GetFileName(options.Backbone)}");
        }
        throw new ArgumentException($"Backbone \"{options.Backbone}\" is neither a known id ({string.Join(", ", BackboneCatalog.Ids)}) nor an existing weights file.", nameof(options));
    }

    /// <summary>torchvision's evaluation transform for a given input size: shorter side to size / 0.875, centre crop, ImageNet mean/std.</summary>
    public static PreprocessingConfig TorchVisionPreprocessing(int inputSize) =>
        PreprocessingConfig.TorchVision with { InputSize = inputSize, ResizeSize = (int)Math.Round(inputSize / 0.875) };

    private static int EpochSeed(int seed, int epoch) => unchecked((seed * 1_000_003) + (epoch * 7919) + 17);

    private TrainingResult Run(
        ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, Device device, IBatchSource data, ResumeState? state,
        string? checkpointDirectory, List<SkippedImage> skipped, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        using var dataScope = data;
        var model = setup.Model;
        nn.Module<Tensor, Tensor> net = options.Mode == TrainingMode.Head ? model.Head : model;
        var (groups, frozen) = ParameterGroups(model, options);
        foreach (var parameter in model.parameters())
        {
            parameter.requires_grad = false;
        }
        foreach (var group in groups)
        {
            foreach (var parameter in group.Parameters)
            {
                parameter.requires_grad = true;
            }
        }
        net.to(device);
        using var optimizer = CreateOptimizer(groups, options);
        var baseRates = groups.Select(g => g.LearningRate).ToArray();

        var history = new List<EpochMetrics>();
        var bestLoss = double.PositiveInfinity;
        var bestEpoch = 0;
        var sinceBest = 0;
        var stoppedEarly = false;
        var start = 0;
        var best = Snapshot(net);
        try
        {
            if (state is not null)
            {
                ResumeCheckpoint.LoadWeights(checkpointDirectory!, state, net);
                Replace(ref best, ResumeCheckpoint.LoadBest(checkpointDirectory!, state));
                ResumeCheckpoint.LoadOptimizer(checkpointDirectory!, state, optimizer);
                history.AddRange(state.History);
                (bestLoss, bestEpoch, sinceBest, stoppedEarly, start) = (state.BestValidationLoss, state.BestEpoch, state.EpochsWithoutImprovement, state.StoppedEarly, state.CompletedEpochs);
                Report(progress, $"Resumed from {checkpointDirectory} after epoch {start} (best so far: epoch {bestEpoch}, val loss {bestLoss:F4}).");
            }

            var trainCount = data.TrainLabels.Length;
            var batches = (trainCount + options.BatchSize - 1) / options.BatchSize;
            for (var epoch = start; epoch < options.Epochs && !stoppedEarly; epoch++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                var factor = 0.5 * (1 + Math.Cos(Math.PI * epoch / options.Epochs));
                foreach (var (group, rate) in optimizer.ParamGroups.Zip(baseRates))
                {
                    group.LearningRate = rate * factor;
                }
                var epochSeed = EpochSeed(options.Seed, epoch);
                manual_seed(epochSeed);
                var random = new Random(epochSeed);
                var order = Enumerable.Range(0, trainCount).ToArray();
                random.Shuffle(order);
                SetTrainMode(model, net, frozen);
                double lossSum = 0;
                long correct = 0;
                for (var b = 0; b < batches; b++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var indices = order.AsSpan(b * options.BatchSize, Math.Min(options.BatchSize, trainCount - (b * options.BatchSize))).ToArray();
                    using (var scope = NewDisposeScope())
                    {
                        var (inputs, targets) = data.TrainBatch(indices, random);
                        optimizer.zero_grad();
                        var logits = net.call(inputs);
                        var loss = nn.functional.cross_entropy(logits, targets);
                        loss.backward();
                        optimizer.step();
                        lossSum += loss.item<float>() * indices.Length;
                        correct += logits.argmax(1).eq(targets).sum().item<long>();
                    }
                    progress?.Report(new TrainingProgress(TrainingPhase.Epoch, b + 1, batches) { Epoch = epoch + 1 });
                }
                var (valLoss, valAccuracy, _) = Evaluate(model, net, data);
                var metrics = new EpochMetrics(epoch + 1, lossSum / trainCount, (double)correct / trainCount, valLoss, valAccuracy, baseRates[0] * factor, watch.Elapsed.TotalSeconds);
                history.Add(metrics);
                if (valLoss < bestLoss)
                {
                    (bestLoss, bestEpoch, sinceBest) = (valLoss, epoch + 1, 0);
                    Replace(ref best, Snapshot(net));
                }
                else
                {
                    sinceBest++;
                }
                LogEpoch(epoch + 1, options.Epochs, metrics.TrainLoss, metrics.TrainAccuracy, valLoss, valAccuracy, metrics.LearningRate, metrics.Seconds);
                stoppedEarly = options.Patience > 0 && sinceBest >= options.Patience && epoch + 1 < options.Epochs;
                if (stoppedEarly)
                {
                    LogEarlyStop(epoch + 1, options.Patience, bestEpoch);
                }
                if (checkpointDirectory is not null)
                {
                    ResumeCheckpoint.Write(checkpointDirectory, new ResumeState
                    {
                        OptionsHash = options.Hash(),
                        DataHash = dataset.DataHash,
                        Mode = options.Mode,
                        CompletedEpochs = epoch + 1,
                        BestEpoch = bestEpoch,
                        BestValidationLoss = bestLoss,
                        EpochsWithoutImprovement = sinceBest,
                        StoppedEarly = stoppedEarly,
                        History = history,
                        WeightsFile = "",
                        BestWeightsFile = "",
                        OptimizerFile = "",
                    }, net, best, optimizer);
                }
                progress?.Report(new TrainingProgress(TrainingPhase.EpochCompleted, epoch + 1, options.Epochs) { Epoch = epoch + 1, Metrics = metrics });
            }

            // Keep the best epoch, not the last.
            Restore(net, best);
            var (finalLoss, finalAccuracy, probabilities) = Evaluate(model, net, data);
            model.to(CPU);
            model.eval();
            return BuildResult(dataset, options, setup, device, data, history, bestEpoch, stoppedEarly, state?.CompletedEpochs ?? 0, finalLoss, finalAccuracy, probabilities, skipped);
        }
        finally
        {
            foreach (var tensor in best.Values)
            {
                tensor.Dispose();
            }
        }
    }

    private static TrainingResult BuildResult(
        ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, Device device, IBatchSource data, List<EpochMetrics> history, int bestEpoch, bool stoppedEarly,
        int resumedFrom, double loss, double accuracy, float[] probabilities, List<SkippedImage> skipped)
    {
        var classes = dataset.Labels.Count;
        var predictions = new List<ValidationPrediction>();
        for (var i = 0; i < data.ValidationLabels.Length; i++)
        {
            var row = probabilities.AsSpan(i * classes, classes).ToArray();
            var top = Array.IndexOf(row, row.Max());
            predictions.Add(new ValidationPrediction(data.ValidationSources[i], dataset.Labels[data.ValidationLabels[i]], dataset.Labels[top], row[top], row));
        }
        var report = Evaluation.Compute(dataset.Labels, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        var counts = (int[] labels) => dataset.Labels.Select((l, c) => (l, c)).ToDictionary(x => x.l, x => labels.Count(y => y == x.c), StringComparer.Ordinal);
        var manifest = new ModelManifest
        {
            Backbone = setup.BackboneId,
            BackboneSource = setup.BackboneSource,
            Head = setup.Model.HeadSpec,
            Labels = dataset.Labels,
            Preprocessing = setup.Preprocessing,
            ConfidenceThreshold = threshold,
            Training = new TrainingSummary
            {
                Mode = options.Mode.ToString().ToLowerInvariant(),
                Epochs = history.Count,
                MaxEpochs = options.Epochs,
                BestEpoch = bestEpoch,
                StoppedEarly = stoppedEarly,
                BatchSize = options.BatchSize,
                LearningRate = options.LearningRate,
                BackboneLrFactor = options.Mode == TrainingMode.Head ? null : options.BackboneLrFactor,
                UnfreezeStages = options.Mode == TrainingMode.Finetune ? options.UnfreezeStages : null,
                WeightDecay = options.WeightDecay,
                Patience = options.Patience,
                ValidationSplit = dataset.ExplicitSplit ? null : options.ValSplit,
                Seed = options.Seed,
                Device = device.type == DeviceType.CUDA ? "cuda" : "cpu",
                Optimizer = options.Optimizer.ToString().ToLowerInvariant(),
                TrainCounts = counts(data.TrainLabels),
                ValidationCounts = counts(data.ValidationLabels),
                ClassImbalanceRatio = dataset.Balance.MaxMinRatio,
                SkippedImages = skipped.Count,
                Skipped = [.. skipped.Take(TrainingSummary.MaxSkippedListed).Select(s => new SkippedImageEntry(s.Source, s.Code.ToString(), s.Message))],
                DataHash = dataset.DataHash,
            },
            Metrics = new ValidationMetrics
            {
                Accuracy = accuracy,
                Loss = loss,
                Samples = data.ValidationLabels.Length,
                MacroF1 = report.MacroF1,
            },
        };
        return new TrainingResult(setup.Model, manifest)
        {
            History = history,
            BestEpoch = bestEpoch,
            StoppedEarly = stoppedEarly,
            ResumedFromEpoch = resumedFrom,
            ValidationPredictions = predictions,
            Validation = report,
            ConfidenceThreshold = threshold,
            SkippedImages = skipped,
            MeanImage = setup.MeanImage,
            VerificationInputs = data is ImageBatches images ? [.. images.ValidationInputs.Take(TrainingData.VerificationImages)] : [],
            Device = device.type == DeviceType.CUDA ? "cuda" : "cpu",
        };
    }

    /// <summary>Validation loss (mean cross-entropy), accuracy and probabilities, in eval mode under no_grad.</summary>
    private static (double Loss, double Accuracy, float[] Probabilities) Evaluate(ImageClassifier model, nn.Module<Tensor, Tensor> net, IBatchSource data)
    {
        model.eval();
        using var noGrad = no_grad();
        var count = data.ValidationLabels.Length;
        var probabilities = new List<float>();
        double lossSum = 0;
        long correct = 0;
        for (var start = 0; start < count; start += EvaluationBatchSize)
        {
            using var scope = NewDisposeScope();
            var n = Math.Min(EvaluationBatchSize, count - start);
            var logits = net.call(data.ValidationBatch(start, n));
            var targets = tensor(data.ValidationLabels.Skip(start).Take(n).Select(l => (long)l).ToArray()).to(logits.device);
            lossSum += nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(targets).sum().item<long>();
            probabilities.AddRange(logits.softmax(1).cpu().data<float>().ToArray());
        }
        return (lossSum / count, (double)correct / count, [.. probabilities]);
    }

    /// <summary>
    /// Train mode for what trains; eval mode for every frozen part, so frozen BatchNorm layers keep
    /// using (and never update) their running statistics.
    /// </summary>
    private static void SetTrainMode(ImageClassifier model, nn.Module net, IReadOnlyList<nn.Module> frozen)
    {
        model.eval();
        net.train();
        foreach (var module in frozen)
        {
            module.eval();
        }
    }

    private sealed record Group(IReadOnlyList<Parameter> Parameters, double LearningRate);

    /// <summary>
    /// Head: the head at LearningRate. Finetune: plus the last UnfreezeStages stages at LearningRate x
    /// BackboneLrFactor. Full: layer4 at LearningRate x BackboneLrFactor, each earlier stage at half the
    /// next one's rate, the stem (conv1, bn1) at half of layer1's. Returns the frozen backbone children too.
    /// </summary>
    private static (List<Group> Groups, List<nn.Module> Frozen) ParameterGroups(ImageClassifier model, TrainingOptions options)
    {
        var groups = new List<Group> { new([.. model.Head.parameters()], options.LearningRate) };
        var children = model.Backbone.named_children().ToList();
        var stages = model.Backbone.StageNames;
        var trainable = new HashSet<string>(StringComparer.Ordinal);
        var backboneRate = options.LearningRate * options.BackboneLrFactor;
        if (options.Mode == TrainingMode.Finetune)
        {
            foreach (var stage in stages.TakeLast(options.UnfreezeStages))
            {
                trainable.Add(stage);
            }
        }
        else if (options.Mode == TrainingMode.Full)
        {
            trainable.UnionWith(children.Select(c => c.name));
        }
        var rate = backboneRate;
        foreach (var stage in stages.Reverse().Where(trainable.Contains))
        {
            groups.Add(new Group([.. children.Single(c => c.name == stage).module.parameters()], options.Mode == TrainingMode.Full ? rate : backboneRate));
            rate /= 2;
        }
        if (options.Mode == TrainingMode.Full)
        {
            var stem = children.Where(c => !stages.Contains(c.name)).SelectMany(c => c.module.parameters()).ToList();
            if (stem.Count > 0)
            {
                groups.Add(new Group(stem, rate));
            }
        }
        var frozen = children.Where(c => !trainable.Contains(c.name)).Select(c => (nn.Module)c.module).ToList();
        return (groups, frozen);
    }

    private static optim.Optimizer CreateOptimizer(List<Group> groups, TrainingOptions options) => options.Optimizer switch
    {
        OptimizerKind.AdamW => optim.AdamW(
            groups.Select(g => new AdamW.ParamGroup(g.Parameters, new AdamW.Options { LearningRate = g.LearningRate, weight_decay = options.WeightDecay })),
            options.LearningRate, weight_decay: options.WeightDecay),
        OptimizerKind.Sgd => optim.SGD(
            groups.Select(g => new SGD.ParamGroup(g.Parameters, new SGD.Options { LearningRate = g.LearningRate, momentum = 0.9, weight_decay = options.WeightDecay })),
            options.LearningRate, momentum: 0.9, weight_decay: options.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "Unknown optimizer."),
    };

    private static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().clone(), StringComparer.Ordinal);

    private static void Replace(ref Dictionary<string, Tensor> current, Dictionary<string, Tensor> next)
    {
        foreach (var tensor in current.Values)
        {
            tensor.Dispose();
        }
        current = next;
    }

    private static void Restore(nn.Module module, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in module.state_dict())
        {
            tensor.copy_(weights[name]);
        }
    }
}
