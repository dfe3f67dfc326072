using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Fitting;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Results;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>
/// A fitted model whose probabilities are calibrated, with what its held-out evidence says: each judged image's
/// calibrated answer, the metrics, the default confidence threshold chosen on them, and the calibration's record.
/// </summary>
internal sealed record Calibrated(Fitted Fit, CalibrationSummary Calibration, IReadOnlyList<ValidationPrediction> Predictions, EvaluationReport Report, double Threshold,
    ValidationMetrics Metrics)
{
    /// <summary>Each class's threshold decision when the plan asks for thresholds per class; null otherwise.</summary>
    public IReadOnlyList<ClassThresholdChoice>? ClassThresholds { get; init; }
}

/// <summary>
/// The calibration stage every plan goes through: temperature scaling (<see cref="Probe.Calibration"/>) on the fit's
/// held-out logits. A probe has fitted its temperature on its out-of-fold logits already (and folded it into the head);
/// any other fit gets one here, chosen on its validation logits (<see cref="Probe.Calibration.ChooseTemperature"/>: 1 unless
/// the fitted T lowers their cross-fitted log-loss) and folded into the linear head (weights and bias divided by T). Either way the record, the calibrated predictions and the threshold come from the same evidence.
/// </summary>
internal static class CalibrationStage
{
    /// <param name="seed">Seeds the folds the temperature is cross-fitted over when the fit has not chosen one.</param>
    /// <param name="goal">How classes get thresholds of their own (<see cref="ClassThresholdChooser"/>); null: one threshold for all.</param>
    public static Calibrated Calibrate(Fitted fit, ImageClassifier model, IReadOnlyList<string> classes, int seed, ThresholdGoal? goal, IProgress<TrainingProgress>? progress)
    {
        var judged = fit.Judged;
        var count = classes.Count;
        var choice = fit.Temperature ?? Probe.Calibration.ChooseTemperature(judged.Logits, judged.Labels, count, seed: seed);
        var temperature = choice.Temperature;
        if (fit.Temperature is null && temperature != 1)
        {
            using var noGrad = no_grad();
            var state = model.Head.state_dict();
            state["fc.weight"].div_(temperature);
            state["fc.bias"].div_(temperature);
        }
        var before = Probe.Calibration.Softmax(judged.Logits, count);
        var after = Probe.Calibration.Softmax(judged.Logits, count, temperature);
        var calibration = new CalibrationSummary
        {
            Temperature = temperature,
            FittedTemperature = choice.Fitted,
            FitAtBound = choice.AtBound,
            HeldOutNll = choice.HeldOutNll,
            TemperatureKept = choice.Kept,
            Decision = choice.Describe(),
            EceBefore = Probe.Calibration.ExpectedCalibrationError(Probe.Calibration.TopOne(before, judged.Labels, count)),
            EceAfter = Probe.Calibration.ExpectedCalibrationError(Probe.Calibration.TopOne(after, judged.Labels, count)),
            NllBefore = Probe.Calibration.NegativeLogLikelihood(judged.Logits, judged.Labels, count),
            NllAfter = Probe.Calibration.NegativeLogLikelihood(judged.Logits, judged.Labels, count, temperature),
            Images = judged.Labels.Length,
            Evidence = judged.Evidence,
        };
        var predictions = new List<ValidationPrediction>(judged.Labels.Length);
        for (var i = 0; i < judged.Labels.Length; i++)
        {
            var row = after.AsSpan(i * count, count).ToArray().Select(p => (float)p).ToArray();
            var top = Array.IndexOf(row, row.Max());
            predictions.Add(new ValidationPrediction(judged.Sources[i], classes[judged.Labels[i]], classes[top], row[top], row));
        }
        var report = Evaluation.Compute(classes, predictions.Select(p => (p.Actual, p.Predicted)));
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions.Select(p => (p.Correct, p.Confidence)));
        if (fit.Temperature is null)
        {
            progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, string.Create(CultureInfo.InvariantCulture,
                $"Calibration on the {judged.Labels.Length} {judged.Evidence} images' predictions: {choice.Describe()} (ECE {calibration.EceBefore:P1} -> {calibration.EceAfter:P1}, " +
                $"log-loss {calibration.NllBefore:F3} -> {calibration.NllAfter:F3}){(choice.Kept ? "; the head's weights are divided by it" : "")}.")));
        }
        var metrics = new ValidationMetrics
        {
            Accuracy = report.Accuracy,
            Loss = calibration.NllAfter,
            Samples = judged.Labels.Length,
            MacroF1 = report.MacroF1,
            ExpectedCalibrationError = calibration.EceAfter,
        };
        return new Calibrated(fit, calibration, predictions, report, threshold, metrics)
        {
            ClassThresholds = goal is null ? null : ChooseClassThresholds(classes, predictions, threshold, goal, judged.Evidence, progress),
        };
    }

    private static IReadOnlyList<ClassThresholdChoice> ChooseClassThresholds(IReadOnlyList<string> classes, List<ValidationPrediction> predictions, double single,
        ThresholdGoal goal, string evidence, IProgress<TrainingProgress>? progress)
    {
        var choices = ClassThresholdChooser.Choose(classes, predictions, single, goal);
        var own = choices.Where(c => c.Own is not null).Select(c => string.Create(CultureInfo.InvariantCulture,
            $"{c.Label} {c.Own!.Threshold:0.###} (precision {c.Own.Precision:P0}, recall {c.Own.Recall:P0})"));
        progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, string.Create(CultureInfo.InvariantCulture,
            $"Class thresholds ({goal}) on the {predictions.Count} {evidence} images' predictions: {(own.Any() ? string.Join(", ", own) : "none")}{(choices.Any(c => c.Own is null) ? $"; the others keep the single threshold {single:0.###}" : "")}.")));
        foreach (var kept in choices.Where(c => c.Own is null && c.Note is not null))
        {
            progress?.Report(new TrainingProgress(TrainingPhase.Info, 0, 0, $"Class {kept.Label}: {kept.Note}."));
        }
        return choices;
    }
}
