using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>Where an epoch loop keeps its checkpoint: the folder and the run record it updates after every epoch.</summary>
internal sealed class EpochCheckpoint(string folder, RunRecord record, Action<string>? saved = null)
{
    public string Folder => folder;

    public RunRecord Record { get; private set; } = record;

    public void Write(EpochState state, nn.Module trainable, IReadOnlyDictionary<string, Tensor> best, optim.Optimizer optimizer)
    {
        Record = RunCheckpoint.WriteEpoch(folder, Record, state, trainable, best, optimizer);
        saved?.Invoke(folder);
    }
}

/// <summary>
/// The epoch loop of finetune and full mode: AdamW steps over parameter groups, the cosine schedule, validation after each
/// epoch, early stopping on the validation loss with the best epoch kept (the start counts as epoch 0), and a resume
/// checkpoint after every epoch.
/// </summary>
internal sealed partial class EpochFitter(ILogger logger)
{
    private const int EvaluationBatchSize = 64;

    private static int EpochSeed(int seed, int epoch) => unchecked((seed * 1_000_003) + (epoch * 7919) + 17);

    /// <summary>The epoch loop over the inputs' batches; the best epoch's weights are in the model when it returns.</summary>
    public Fitted Run(
        EpochPlan plan, IReadOnlyList<string> classes, ImageClassifier model, IEpochInputs inputs, Device device, EpochState? state,
        EpochCheckpoint? checkpoint, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var data = inputs.Batches;
        var net = inputs.Network(model);
        var (groups, frozen) = ParameterGroups.Create(model, plan);
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
        using var optimizer = ParameterGroups.CreateOptimizer(groups, plan);
        // Every group's rate follows one cosine from its own peak down to 0 over the epochs, stepped once per epoch.
        var schedule = optim.lr_scheduler.CosineAnnealingLR(optimizer, plan.Epochs);

        var history = new List<EpochMetrics>();
        var bestLoss = double.PositiveInfinity;
        var bestEpoch = 0;
        var sinceBest = 0;
        var stoppedEarly = false;
        var start = 0;
        var best = ParameterGroups.Snapshot(net);
        (double Loss, double Calibrated)? startFigures = null;
        try
        {
            if (state is not null)
            {
                RunCheckpoint.LoadWeights(checkpoint!.Folder, state, net);
                ParameterGroups.Replace(ref best, RunCheckpoint.LoadBest(checkpoint.Folder, state));
                // Replay the schedule to where the run stopped, then restore the optimizer (whose saved rates are the same).
                for (var e = 0; e < state.CompletedEpochs; e++)
                {
                    schedule.step();
                }
                RunCheckpoint.LoadOptimizer(checkpoint.Folder, state, optimizer);
                history.AddRange(state.History);
                (bestLoss, bestEpoch, sinceBest, stoppedEarly, start) = (state.BestValidationLoss, state.BestEpoch, state.EpochsWithoutImprovement, state.StoppedEarly, state.CompletedEpochs);
                Info(progress, $"Resumed from {checkpoint.Folder} after epoch {start} (best so far: epoch {bestEpoch}, val loss {bestLoss:F4}).");
            }

            if (state is null)
            {
                // The start (a probe-initialised head on the pretrained backbone, or a random head) is epoch 0:
                // a candidate like any epoch, so fine-tuning never ends worse than it began on the validation loss.
                var (startLoss, startAccuracy, startLogits) = Evaluate(model, net, data);
                RequireFiniteLoss(startLoss, 0);
                var startCalibrated = CalibratedLoss(startLogits, data.ValidationLabels, classes.Count);
                (bestLoss, bestEpoch) = (plan.Selection == EpochSelection.CalibratedLoss ? startCalibrated : startLoss, 0);
                startFigures = (startLoss, startCalibrated);
                Info(progress, string.Create(CultureInfo.InvariantCulture,
                    $"Start (epoch 0): val loss {startLoss:F4} (calibrated {startCalibrated:F4}) acc {startAccuracy:P1}; a later epoch is kept only if its {(plan.Selection == EpochSelection.CalibratedLoss ? "calibrated validation loss (each epoch's own temperature)" : "validation loss")} is lower."));
            }

            var trainCount = data.TrainLabels.Length;
            var batches = (trainCount + plan.BatchSize - 1) / plan.BatchSize;
            for (var epoch = start; epoch < plan.Epochs && !stoppedEarly; epoch++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var watch = Stopwatch.StartNew();
                var headRate = optimizer.ParamGroups.First().LearningRate;
                var epochSeed = EpochSeed(plan.Seed, epoch);
                manual_seed(epochSeed);
                var random = new Random(epochSeed);
                var order = Enumerable.Range(0, trainCount).ToArray();
                random.Shuffle(order);
                ParameterGroups.SetTrainMode(model, net, frozen, plan.UpdateBatchNormStatistics != true);
                double lossSum = 0;
                long correct = 0;
                for (var b = 0; b < batches; b++)
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    var indices = order.AsSpan(b * plan.BatchSize, Math.Min(plan.BatchSize, trainCount - (b * plan.BatchSize))).ToArray();
                    using (var scope = NewDisposeScope())
                    {
                        var (batch, targets) = data.TrainBatch(indices, random);
                        optimizer.zero_grad();
                        var output = net.call(batch);
                        // Label smoothing in the training loss only; validation loss (early stopping) stays plain cross-entropy.
                        var loss = nn.functional.cross_entropy(output, targets, label_smoothing: plan.LabelSmoothing);
                        loss.backward();
                        optimizer.step();
                        lossSum += loss.item<float>() * indices.Length;
                        correct += output.argmax(1).eq(targets).sum().item<long>();
                    }
                    progress?.Report(new TrainingProgress(TrainingPhase.Epoch, b + 1, batches) { Epoch = epoch + 1 });
                }
                schedule.step();
                var trainSeconds = watch.Elapsed.TotalSeconds;
                var (valLoss, valAccuracy, valLogits) = Evaluate(model, net, data);
                RequireFiniteLoss(valLoss, epoch + 1);
                var calibrated = CalibratedLoss(valLogits, data.ValidationLabels, classes.Count);
                var metrics = new EpochMetrics(epoch + 1, lossSum / trainCount, (double)correct / trainCount, valLoss, valAccuracy, headRate, watch.Elapsed.TotalSeconds)
                {
                    ImagesPerSecond = trainCount / Math.Max(trainSeconds, 1e-9),
                    CalibratedValidationLoss = calibrated,
                };
                history.Add(metrics);
                var criterion = plan.Selection == EpochSelection.CalibratedLoss ? calibrated : valLoss;
                if (criterion < bestLoss)
                {
                    (bestLoss, bestEpoch, sinceBest) = (criterion, epoch + 1, 0);
                    ParameterGroups.Replace(ref best, ParameterGroups.Snapshot(net));
                }
                else
                {
                    sinceBest++;
                }
                LogEpoch(epoch + 1, plan.Epochs, metrics.TrainLoss, metrics.TrainAccuracy, valLoss, valAccuracy, metrics.LearningRate, metrics.Seconds, metrics.ImagesPerSecond);
                stoppedEarly = plan.Patience > 0 && sinceBest >= plan.Patience && epoch + 1 < plan.Epochs;
                if (stoppedEarly)
                {
                    LogEarlyStop(epoch + 1, plan.Patience, bestEpoch);
                }
                checkpoint?.Write(new EpochState
                {
                    CompletedEpochs = epoch + 1,
                    BestEpoch = bestEpoch,
                    BestValidationLoss = bestLoss,
                    EpochsWithoutImprovement = sinceBest,
                    StoppedEarly = stoppedEarly,
                    History = history,
                }, net, best, optimizer);
                progress?.Report(new TrainingProgress(TrainingPhase.EpochCompleted, epoch + 1, plan.Epochs) { Epoch = epoch + 1, Metrics = metrics });
            }

            // Keep the best epoch, not the last.
            ParameterGroups.Restore(net, best);
            var (_, _, logits) = Evaluate(model, net, data);
            model.to(CPU);
            model.eval();
            return new Fitted
            {
                Judged = new Judged(inputs.ValidationImages, data.ValidationLabels, data.ValidationSources, logits, Judged.ValidationSplit),
                History = history,
                BestEpoch = bestEpoch,
                StoppedEarly = stoppedEarly,
                ResumedFromEpoch = state?.CompletedEpochs ?? 0,
                Summary = new TrainingSummary
                {
                    Mode = plan.Mode.ToString().ToLowerInvariant(),
                    Epochs = history.Count,
                    MaxEpochs = plan.Epochs,
                    BestEpoch = bestEpoch,
                    StoppedEarly = stoppedEarly,
                    EpochSelection = plan.Selection == EpochSelection.CalibratedLoss ? "calibratedLoss" : "loss",
                    StartValidationLoss = startFigures?.Loss,
                    StartCalibratedValidationLoss = startFigures?.Calibrated,
                    BatchSize = plan.BatchSize,
                    LearningRate = plan.LearningRate,
                    BackboneLrFactor = plan.BackboneLrFactor,
                    UnfreezeStages = plan is FinetunePlan finetune ? finetune.Stages : null,
                    WeightDecay = plan.WeightDecay,
                    Patience = plan.Patience,
                    Seed = plan.Seed,
                    Optimizer = "adamw",
                    TrainCounts = ProbeHeads.Counts(classes, data.TrainLabels),
                    ValidationCounts = ProbeHeads.Counts(classes, data.ValidationLabels),
                },
                VerificationInputs = data.VerificationInputs,
            };
        }
        finally
        {
            foreach (var tensor in best.Values)
            {
                tensor.Dispose();
            }
        }
    }

    /// <summary>Validation loss (mean cross-entropy), accuracy and logits (n x classes), in eval mode under no_grad.</summary>
    private static (double Loss, double Accuracy, double[] Logits) Evaluate(ImageClassifier model, nn.Module<Tensor, Tensor> net, IBatchSource data)
    {
        model.eval();
        using var noGrad = no_grad();
        var count = data.ValidationLabels.Length;
        var logitRows = new List<double>();
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
            logitRows.AddRange(logits.to_type(ScalarType.Float64).cpu().data<double>().ToArray());
        }
        return (lossSum / count, (double)correct / count, [.. logitRows]);
    }

    /// <summary>The validation log-loss at the temperature that minimises it on these logits (one parameter: every candidate gets the same advantage).</summary>
    private static double CalibratedLoss(double[] logits, int[] labels, int classes) =>
        Probe.Calibration.NegativeLogLikelihood(logits, labels, classes, Probe.Calibration.FitTemperature(logits, labels, classes));

    /// <summary>A validation loss that is not a number means the network's outputs overflowed: say so instead of training on.</summary>
    private static void RequireFiniteLoss(double loss, int epoch)
    {
        if (!double.IsFinite(loss))
        {
            throw new TrainingException(string.Create(CultureInfo.InvariantCulture,
                $"The validation loss at epoch {epoch} is {loss}: the network's outputs overflow. The backbone's weights are probably not trained weights (a random or wrongly scaled weights file makes activations grow without bound); check --backbone."));
        }
    }

    private static void Info(IProgress<TrainingProgress>? progress, string message) => progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, message));

    [LoggerMessage(Level = LogLevel.Information, Message = "Epoch {Epoch}/{Epochs}: train loss {TrainLoss:F4} acc {TrainAccuracy:P1}, val loss {ValLoss:F4} acc {ValAccuracy:P1}, lr {LearningRate:E2}, {Seconds:F2} s, {ImagesPerSecond:F1} training images/s")]
    private partial void LogEpoch(int epoch, int epochs, double trainLoss, double trainAccuracy, double valLoss, double valAccuracy, double learningRate, double seconds, double imagesPerSecond);

    [LoggerMessage(Level = LogLevel.Information, Message = "Early stopping after epoch {Epoch}: no lower validation loss for {Patience} epochs; keeping epoch {BestEpoch}")]
    private partial void LogEarlyStop(int epoch, int patience, int bestEpoch);
}
