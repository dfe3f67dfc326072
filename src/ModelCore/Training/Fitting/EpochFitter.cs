using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Probe;
using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>Where an epoch loop keeps its checkpoint: the folder and the run record it updates after every epoch.</summary>
internal sealed class EpochCheckpoint(string folder, RunRecord record, Action<string>? saved = null)
{
    public string Folder => folder;

    public RunRecord Record { get; private set; } = record;

    public void Write(EpochState state, nn.Module trainable, IReadOnlyDictionary<string, Tensor> best, optim.Optimizer optimizer, WeightAverage? average)
    {
        Record = RunCheckpoint.WriteEpoch(folder, Record, state, trainable, best, optimizer, average);
        saved?.Invoke(folder);
    }
}

/// <summary>
/// The epoch loop of finetune and full mode: AdamW steps over parameter groups, the cosine schedule, validation after each
/// epoch, early stopping on the validation loss, and a resume checkpoint after every epoch. The start counts as epoch 0. A
/// probe start (a fitted, calibrated head: head mode's model) is kept unless a later epoch is clearly better: its
/// per-image validation losses below the start's by more than <see cref="PairedLosses.ClearStandardErrors"/> standard
/// errors of the paired difference (a validation split of a hundred
/// images cannot tell a barely better epoch from the start, and such epochs scored below the start on held-out images);
/// among the epochs that clear that bar, the one with the lowest validation loss (the best estimate of the loss once the
/// bar has ruled out noise against the start; the bar itself is not a ranking) is kept. A random start is no model worth
/// protecting: any lower epoch replaces it. With <see cref="EpochPlan.WeightInterpolation"/> the candidates are the start and
/// one model instead of the epochs: the mean of every epoch's weights interpolated with the start's, kept under the same margin.
/// </summary>
internal sealed partial class EpochFitter(ILogger logger)
{
    private const int EvaluationBatchSize = 64;

    private static int EpochSeed(int seed, int epoch) => unchecked((seed * 1_000_003) + (epoch * 7919) + 17);

    /// <summary>The epoch loop over the inputs' batches; the best epoch's weights are in the model when it returns.</summary>
    /// <param name="multiLabel">
    /// Null: one class per image, the softmax cross-entropy. Else a multi-label fine-tune: the loss is each image's summed per-label
    /// binary cross-entropy (training, validation, the comparison with the start), and accuracy is the exact match at 0.5.
    /// </param>
    public Fitted Run(
        EpochPlan plan, IReadOnlyList<string> classes, ImageClassifier model, IEpochInputs inputs, Device device, EpochState? state,
        EpochCheckpoint? checkpoint, IProgress<TrainingProgress>? progress, MultiLabelTargets? multiLabel, CancellationToken cancellationToken)
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
        var lowestLoss = double.PositiveInfinity;
        IReadOnlyList<double> startLosses = [];
        string? keptReason = null;
        var bestEpoch = 0;
        var sinceBest = 0;
        var stoppedEarly = false;
        var start = 0;
        var best = ParameterGroups.Snapshot(net);
        (double Loss, double? Calibrated)? startFigures = null;
        // Each validation image's loss on the selection's criterion, and the calibrated loss (none for a multi-label fine-tune: its selection is the loss).
        double[] Losses(double[] logits) => multiLabel is null ? ImageLosses(plan.Selection, logits, data.ValidationLabels, classes.Count) : multiLabel.ImageLosses(logits);
        double? Calibrated(double[] logits) => multiLabel is null ? CalibratedLoss(logits, data.ValidationLabels, classes.Count) : null;
        WeightAverage? average = null;
        var averaged = plan.WeightInterpolation is not null;
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
                (bestLoss, lowestLoss, bestEpoch, sinceBest, stoppedEarly, start) = (state.BestValidationLoss, state.LowestValidationLoss, state.BestEpoch, state.EpochsWithoutImprovement, state.StoppedEarly, state.CompletedEpochs);
                startLosses = state.StartLosses;
                average = averaged ? RunCheckpoint.LoadAverage(checkpoint.Folder, state) : null;
                Info(progress, $"Resumed from {checkpoint.Folder} after epoch {start} (best so far: epoch {bestEpoch}, val loss {bestLoss:F4}).");
            }

            if (state is null)
            {
                // The start (a probe-initialised head on the pretrained backbone, or a random head) is epoch 0:
                // a candidate like any epoch, so fine-tuning never ends worse than it began on the validation loss.
                var (startLoss, startAccuracy, startLogits) = Evaluate(model, net, data, multiLabel);
                RequireFiniteLoss(startLoss, 0);
                var startCalibrated = Calibrated(startLogits);
                (bestLoss, bestEpoch) = (plan.Selection == EpochSelection.CalibratedLoss ? startCalibrated!.Value : startLoss, 0);
                lowestLoss = bestLoss;
                startLosses = Losses(startLogits);
                startFigures = (startLoss, startCalibrated);
                average = averaged ? new WeightAverage(ParameterGroups.Snapshot(net)) : null;
                Info(progress, string.Create(CultureInfo.InvariantCulture,
                    $"Start (epoch 0): val loss {startLoss:F4} {(multiLabel is null ? $"(calibrated {startCalibrated:F4}) acc" : "(summed per-label binary cross-entropy) exact match")} {startAccuracy:P1}; a later epoch is kept only if its {Criterion(plan.Selection)} is {(plan.Start == HeadStart.Probe ? $"below the start's by more than {PairedLosses.ClearStandardErrors:G} standard errors of the per-image difference ({startLosses.Count} validation images)" : "lower (the start is a random head)")}."));
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
                        if (multiLabel is not null)
                        {
                            // Each image's per-label binary cross-entropies summed, averaged over the batch; label smoothing pulls each
                            // target toward 0.5 by half the smoothing (training loss only).
                            var truth = multiLabel.TrainTargets(indices, output.device);
                            var binary = nn.functional.binary_cross_entropy_with_logits(output, (truth * (1 - plan.LabelSmoothing)) + (plan.LabelSmoothing / 2), reduction: nn.Reduction.None).sum(1).mean();
                            binary.backward();
                            optimizer.step();
                            lossSum += binary.item<float>() * indices.Length;
                            correct += output.ge(0).eq(truth.ge(0.5)).all(1).sum().item<long>();
                            progress?.Report(new TrainingProgress(TrainingPhase.Epoch, b + 1, batches) { Epoch = epoch + 1 });
                            continue;
                        }
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
                var (valLoss, valAccuracy, valLogits) = Evaluate(model, net, data, multiLabel);
                RequireFiniteLoss(valLoss, epoch + 1);
                var calibrated = Calibrated(valLogits);
                var criterion = plan.Selection == EpochSelection.CalibratedLoss ? calibrated!.Value : valLoss;
                var belowStart = PairedLosses.Of(startLosses, Losses(valLogits));
                var metrics = new EpochMetrics(epoch + 1, lossSum / trainCount, (double)correct / trainCount, valLoss, valAccuracy, headRate, watch.Elapsed.TotalSeconds)
                {
                    ImagesPerSecond = trainCount / Math.Max(trainSeconds, 1e-9),
                    CalibratedValidationLoss = calibrated,
                    LossBelowStart = belowStart.Mean,
                    LossBelowStartStandardError = belowStart.StandardError,
                    ClearlyBelowStart = belowStart.ClearlyPositive,
                };
                history.Add(metrics);
                var keep = !averaged && KeepEpoch(belowStart, criterion, bestLoss, clearOfTheStart: plan.Start == HeadStart.Probe);
                average?.Add(net);
                if (keep)
                {
                    (bestLoss, bestEpoch) = (criterion, epoch + 1);
                    ParameterGroups.Replace(ref best, ParameterGroups.Snapshot(net));
                }
                // Early stopping follows the loss itself, not the bar: an epoch a little below the start is progress that a
                // later epoch may turn into a clear gain.
                (lowestLoss, sinceBest) = criterion < lowestLoss ? (criterion, 0) : (lowestLoss, sinceBest + 1);
                LogEpoch(epoch + 1, plan.Epochs, metrics.TrainLoss, metrics.TrainAccuracy, valLoss, valAccuracy, metrics.LearningRate, metrics.Seconds, metrics.ImagesPerSecond);
                var startCriterion = criterion + belowStart.Mean;
                Info(progress, string.Create(CultureInfo.InvariantCulture,
                    $"Epoch {epoch + 1} against the start: {Criterion(plan.Selection)} {criterion:F4} vs {startCriterion:F4}, difference {belowStart}: {(averaged ? $"{(belowStart.ClearlyPositive ? "clearly" : "not clearly")} better than the start; the mean of the epochs is the candidate" : EpochVerdict(keep, belowStart, plan.Start))}."));
                stoppedEarly = plan.Patience > 0 && sinceBest >= plan.Patience && epoch + 1 < plan.Epochs;
                if (stoppedEarly)
                {
                    LogEarlyStop(epoch + 1, plan.Patience, bestEpoch);
                }
                var validationSeconds = watch.Elapsed.TotalSeconds - trainSeconds;
                var checkpointWatch = Stopwatch.StartNew();
                checkpoint?.Write(new EpochState
                {
                    CompletedEpochs = epoch + 1,
                    BestEpoch = bestEpoch,
                    BestValidationLoss = bestLoss,
                    LowestValidationLoss = lowestLoss,
                    EpochsWithoutImprovement = sinceBest,
                    StartLosses = startLosses,
                    StoppedEarly = stoppedEarly,
                    History = history,
                }, net, best, optimizer, average);
                Info(progress, string.Create(CultureInfo.InvariantCulture,
                    $"Epoch {epoch + 1} took {trainSeconds:F1} s to train, {validationSeconds:F1} s to validate{(checkpoint is null ? "" : $" and {checkpointWatch.Elapsed.TotalSeconds:F1} s to write its resume checkpoint")}."));
                progress?.Report(new TrainingProgress(TrainingPhase.EpochCompleted, epoch + 1, plan.Epochs) { Epoch = epoch + 1, Metrics = metrics });
            }

            // Keep the best epoch, not the last; or, with weight averaging, the averaged model or the start.
            int? averagedEpochs = null;
            if (average?.Mean is not null)
            {
                var (kept, reason) = ChooseAverage(plan, model, net, data, multiLabel, Losses, Calibrated, average, startLosses, progress);
                ParameterGroups.Replace(ref best, kept ? average.Interpolate(plan.WeightInterpolation!.Value) : ParameterGroups.Clone(average.Start));
                (bestEpoch, averagedEpochs, keptReason) = (kept ? history[^1].Epoch : 0, kept ? average.Epochs : null, reason);
            }
            else
            {
                keptReason = KeptReason(plan.Selection, bestEpoch, history, plan.Start);
            }
            Info(progress, keptReason);
            ParameterGroups.Restore(net, best);
            var (_, _, logits) = Evaluate(model, net, data, multiLabel);
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
                    KeptEpochReason = keptReason,
                    WeightInterpolation = plan.WeightInterpolation,
                    AveragedEpochs = averagedEpochs,
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
            average?.Dispose();
        }
    }

    /// <summary>The interpolations between the start and the epochs' mean that the log reports beside the plan's own.</summary>
    private static readonly double[] ReportedInterpolations = [0.25, 0.5, 0.75, 1];

    /// <summary>
    /// Whether the averaged model (the start interpolated towards the epochs' mean at the plan's alpha) replaces the start:
    /// when its per-image validation losses are clearly below the start's, or always where the plan says so. The other
    /// interpolations are evaluated and logged only.
    /// </summary>
    private static (bool Kept, string Reason) ChooseAverage(EpochPlan plan, ImageClassifier model, nn.Module<Tensor, Tensor> net, IBatchSource data, MultiLabelTargets? multiLabel,
        Func<double[], double[]> losses, Func<double[], double?> calibratedLoss, WeightAverage average, IReadOnlyList<double> startLosses, IProgress<TrainingProgress>? progress)
    {
        var alpha = plan.WeightInterpolation!.Value;
        PairedLosses chosen = default;
        var chosenCriterion = 0.0;
        foreach (var a in ReportedInterpolations.Append(alpha).Distinct().Order())
        {
            var weights = average.Interpolate(a);
            try
            {
                ParameterGroups.Restore(net, weights);
            }
            finally
            {
                foreach (var tensor in weights.Values)
                {
                    tensor.Dispose();
                }
            }
            var (loss, accuracy, logits) = Evaluate(model, net, data, multiLabel);
            RequireFiniteLoss(loss, average.Epochs);
            var calibrated = calibratedLoss(logits);
            var criterion = plan.Selection == EpochSelection.CalibratedLoss ? calibrated!.Value : loss;
            var below = PairedLosses.Of(startLosses, losses(logits));
            Info(progress, string.Create(CultureInfo.InvariantCulture,
                $"Mean of epochs 1-{average.Epochs} at interpolation {a:G3} from the start{(a == alpha ? " (the plan's)" : "")}: val loss {loss:F4} {(calibrated is { } c ? $"(calibrated {c:F4}) acc" : "(summed per-label binary cross-entropy) exact match")} {accuracy:P1}, {Criterion(plan.Selection)} below the start's by {below}{(below.ClearlyPositive ? ", clearly" : "")}."));
            if (a == alpha)
            {
                (chosen, chosenCriterion) = (below, criterion);
            }
        }
        var kept = !plan.AveragedModelNeedsMargin || chosen.ClearlyPositive;
        var what = string.Create(CultureInfo.InvariantCulture, $"the mean of epochs 1-{average.Epochs} interpolated {alpha:G3} of the way from the start");
        var figures = string.Create(CultureInfo.InvariantCulture,
            $"{Criterion(plan.Selection)} {chosenCriterion:F4} vs start {chosenCriterion + chosen.Mean:F4}, difference {chosen.Mean:F4} ± {chosen.StandardError:F4} ({PairedLosses.ClearStandardErrors:G} SE needed: {chosen.Margin:F4})");
        return (kept, (kept, chosen.ClearlyPositive) switch
        {
            (true, true) => $"Kept {what}: {figures}, clearly below the start.",
            (true, false) => $"Kept {what} without the margin (the plan keeps it whatever the validation split says): {figures}.",
            _ => $"The start is kept: {what} was not clearly better ({figures}).",
        });
    }

    /// <summary>
    /// Validation loss (mean cross-entropy; multi-label: mean of each image's summed binary cross-entropies), accuracy (multi-label:
    /// the exact match at 0.5) and logits (n x classes), in eval mode under no_grad.
    /// </summary>
    private static (double Loss, double Accuracy, double[] Logits) Evaluate(ImageClassifier model, nn.Module<Tensor, Tensor> net, IBatchSource data, MultiLabelTargets? multiLabel)
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
            if (multiLabel is not null)
            {
                var truth = multiLabel.ValidationTargets(start, n, logits.device);
                lossSum += nn.functional.binary_cross_entropy_with_logits(logits, truth, reduction: nn.Reduction.Sum).item<float>();
                correct += logits.ge(0).eq(truth.ge(0.5)).all(1).sum().item<long>();
                logitRows.AddRange(logits.to_type(ScalarType.Float64).cpu().data<double>().ToArray());
                continue;
            }
            var targets = tensor(data.ValidationLabels.Skip(start).Take(n).Select(l => (long)l).ToArray()).to(logits.device);
            lossSum += nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(targets).sum().item<long>();
            logitRows.AddRange(logits.to_type(ScalarType.Float64).cpu().data<double>().ToArray());
        }
        return (lossSum / count, (double)correct / count, [.. logitRows]);
    }

    /// <summary>
    /// Whether an epoch replaces the kept one: when its <paramref name="criterion"/> is below the kept one's
    /// (<paramref name="kept"/>: the start's while it is kept) and, with <paramref name="clearOfTheStart"/>, it is clearly below
    /// the start (<paramref name="belowStart"/>: the start's per-image losses minus its own).
    /// </summary>
    internal static bool KeepEpoch(PairedLosses belowStart, double criterion, double kept, bool clearOfTheStart) =>
        (!clearOfTheStart || belowStart.ClearlyPositive) && criterion < kept;

    private static string EpochVerdict(bool kept, PairedLosses belowStart, HeadStart start) => (kept, start) switch
    {
        (true, HeadStart.Probe) => "clearly better, kept (the lowest of the clearly better epochs so far)",
        (true, _) => "kept (the lowest so far)",
        (false, HeadStart.Probe) when belowStart.ClearlyPositive => "clearly better, but not below the kept epoch",
        (false, HeadStart.Probe) => "not clearly better than the start",
        _ => "not below the kept epoch",
    };

    /// <summary>Which epoch was kept and why, from the epochs' comparisons with the start.</summary>
    internal static string KeptReason(EpochSelection selection, int bestEpoch, IReadOnlyList<EpochMetrics> history, HeadStart start)
    {
        var criterion = Criterion(selection);
        if (start != HeadStart.Probe)
        {
            return string.Create(CultureInfo.InvariantCulture, $"Kept epoch {bestEpoch}{(bestEpoch == 0 ? " (the random start)" : "")}: the lowest {criterion} (a random start needs no margin).");
        }
        if (bestEpoch == 0)
        {
            // The epoch nearest the bar is the one with the most standard errors below the start, not the largest difference:
            // the bar is in standard errors, and a larger difference with a larger spread can be further from it.
            var closest = history.Where(h => h.LossBelowStart is not null).MaxBy(h => StandardErrorsBelowStart(h));
            return closest is null
                ? "No epoch ran: the start is kept."
                : string.Create(CultureInfo.InvariantCulture,
                    $"No epoch beat the start clearly: the start is kept (the nearest the bar, epoch {closest.Epoch}, was {closest.LossBelowStart:F4} ± {closest.LossBelowStartStandardError:F4} below it on the {criterion}: {StandardErrorsBelowStart(closest):F2} standard errors, {PairedLosses.ClearStandardErrors:G} needed).");
        }
        var kept = history.First(h => h.Epoch == bestEpoch);
        var value = selection == EpochSelection.CalibratedLoss ? kept.CalibratedValidationLoss!.Value : kept.ValidationLoss;
        return string.Create(CultureInfo.InvariantCulture,
            $"Kept epoch {bestEpoch}: {criterion} {value:F4} vs start {value + kept.LossBelowStart!.Value:F4}, difference {kept.LossBelowStart:F4} ± {kept.LossBelowStartStandardError:F4} ({PairedLosses.ClearStandardErrors:G} SE needed: {PairedLosses.ClearStandardErrors * kept.LossBelowStartStandardError!.Value:F4}), the lowest of the epochs clearly below the start.");
    }

    /// <summary>How many standard errors of the paired difference an epoch's loss is below the start's (negative: above it).</summary>
    internal static double StandardErrorsBelowStart(EpochMetrics epoch)
    {
        var difference = epoch.LossBelowStart ?? 0;
        return epoch.LossBelowStartStandardError is { } error && error > 0 ? difference / error : difference switch
        {
            > 0 => double.PositiveInfinity,
            < 0 => double.NegativeInfinity,
            _ => 0,
        };
    }

    private static string Criterion(EpochSelection selection) =>
        selection == EpochSelection.CalibratedLoss ? "calibrated validation loss (each epoch's own temperature)" : "validation loss";

    /// <summary>Each validation image's loss on the selection's criterion: at T = 1, or at the temperature fitted on these logits.</summary>
    private static double[] ImageLosses(EpochSelection selection, double[] logits, int[] labels, int classes) =>
        Calibration.NegativeLogLikelihoods(logits, labels, classes,
            selection == EpochSelection.CalibratedLoss ? Calibration.FitTemperature(logits, labels, classes) : 1);

    /// <summary>The validation log-loss at the temperature that minimises it on these logits (one parameter: every candidate gets the same advantage).</summary>
    private static double CalibratedLoss(double[] logits, int[] labels, int classes) =>
        Calibration.NegativeLogLikelihood(logits, labels, classes, Calibration.FitTemperature(logits, labels, classes));

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

    [LoggerMessage(Level = LogLevel.Information, Message = "Early stopping after epoch {Epoch}: no lower validation loss for {Patience} epochs; keeping epoch {BestEpoch} (0: the start)")]
    private partial void LogEarlyStop(int epoch, int patience, int bestEpoch);
}
