using System.Diagnostics;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The epoch loop: optimizer steps, the cosine schedule, validation, early stopping and resume checkpoints.</summary>
public sealed partial class TransferTrainer
{
    private const int EvaluationBatchSize = 64;

    private static int EpochSeed(int seed, int epoch) => unchecked((seed * 1_000_003) + (epoch * 7919) + 17);

    /// <summary>The epoch loop over <paramref name="data"/> (which the caller disposes).</summary>
    private TrainingResult Run(
        ImageFolderDataset dataset, TrainingOptions options, ModelSetup setup, Device device, IBatchSource data, ResumeState? state,
        string? checkpointDirectory, List<SkippedImage> skipped, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
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
        // Every group's rate follows one cosine from its own peak down to 0 over the epochs, stepped once per epoch.
        var schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, options.Epochs);

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
                // Replay the schedule to where the run stopped, then restore the optimizer (whose saved rates are the same).
                for (var e = 0; e < state.CompletedEpochs; e++)
                {
                    schedule.step();
                }
                ResumeCheckpoint.LoadOptimizer(checkpointDirectory!, state, optimizer);
                history.AddRange(state.History);
                (bestLoss, bestEpoch, sinceBest, stoppedEarly, start) = (state.BestValidationLoss, state.BestEpoch, state.EpochsWithoutImprovement, state.StoppedEarly, state.CompletedEpochs);
                Report(progress, $"Resumed from {checkpointDirectory} after epoch {start} (best so far: epoch {bestEpoch}, val loss {bestLoss:F4}).");
            }

            if (state is null && options.Mode != TrainingMode.Head)
            {
                // The start (a probe-initialised head on the pretrained backbone, or a random head) is epoch 0:
                // a candidate like any epoch, so fine-tuning never ends worse than it began on the validation loss.
                var (startLoss, startAccuracy, _) = Evaluate(model, net, data);
                RequireFiniteLoss(startLoss, 0);
                (bestLoss, bestEpoch) = (startLoss, 0);
                Report(progress, string.Create(System.Globalization.CultureInfo.InvariantCulture,
                    $"Start (epoch 0): val loss {startLoss:F4} acc {startAccuracy:P1}; a later epoch is kept only if its validation loss is lower."));
            }

            var trainCount = data.TrainLabels.Length;
            var batches = (trainCount + options.BatchSize - 1) / options.BatchSize;
            for (var epoch = start; epoch < options.Epochs && !stoppedEarly; epoch++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                var headRate = optimizer.ParamGroups.First().LearningRate;
                var epochSeed = EpochSeed(options.Seed, epoch);
                manual_seed(epochSeed);
                var random = new Random(epochSeed);
                var order = Enumerable.Range(0, trainCount).ToArray();
                random.Shuffle(order);
                SetTrainMode(model, net, frozen, options.Mode != TrainingMode.Head && !options.UpdateBatchNormStatistics);
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
                        // Label smoothing in the training loss only; validation loss (early stopping) stays plain cross-entropy.
                        var loss = nn.functional.cross_entropy(logits, targets, label_smoothing: options.Mode == TrainingMode.Head ? 0 : options.LabelSmoothing);
                        loss.backward();
                        optimizer.step();
                        lossSum += loss.item<float>() * indices.Length;
                        correct += logits.argmax(1).eq(targets).sum().item<long>();
                    }
                    progress?.Report(new TrainingProgress(TrainingPhase.Epoch, b + 1, batches) { Epoch = epoch + 1 });
                }
                schedule.step();
                var trainSeconds = watch.Elapsed.TotalSeconds;
                var (valLoss, valAccuracy, _) = Evaluate(model, net, data);
                RequireFiniteLoss(valLoss, epoch + 1);
                var metrics = new EpochMetrics(epoch + 1, lossSum / trainCount, (double)correct / trainCount, valLoss, valAccuracy, headRate, watch.Elapsed.TotalSeconds)
                {
                    ImagesPerSecond = trainCount / Math.Max(trainSeconds, 1e-9),
                };
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
                LogEpoch(epoch + 1, options.Epochs, metrics.TrainLoss, metrics.TrainAccuracy, valLoss, valAccuracy, metrics.LearningRate, metrics.Seconds, metrics.ImagesPerSecond);
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

    /// <summary>A validation loss that is not a number means the network's outputs overflowed: say so instead of training on.</summary>
    private static void RequireFiniteLoss(double loss, int epoch)
    {
        if (!double.IsFinite(loss))
        {
            throw new TrainingException(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"The validation loss at epoch {epoch} is {loss}: the network's outputs overflow. The backbone's weights are probably not trained weights (a random or wrongly scaled weights file makes activations grow without bound); check --backbone."));
        }
    }
}
