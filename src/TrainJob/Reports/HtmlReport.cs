using System.Globalization;
using System.Net;
using System.Text;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Probe;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>
/// Renders a <see cref="TrainingReport"/> as one self-contained HTML page: inline CSS and SVG, no
/// scripts, no external resources. Every piece of text that comes from data (labels are folder
/// names, file names and messages come from users) is HTML-encoded: a label like
/// <c>&lt;script&gt;</c> shows as text and never runs.
/// </summary>
public static class HtmlReport
{
    public static string Render(TrainingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .Append("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n")
            .Append("<title>").Append(E(report.Title)).Append("</title>\n<style>\n")
            .Append("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}")
            .Append("td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}")
            .Append(".charts{display:flex;flex-wrap:wrap;gap:1.5em}svg text{font-size:11px;font-family:sans-serif}")
            .Append(".note{padding:6px 10px;border-radius:4px;margin:4px 0;max-width:60em}.info{background:#eef3f8;color:#234;border-left:4px solid #4c78a8}")
            .Append(".warning{background:#fff1e0;color:#8a4500;border-left:4px solid #d9822b}")
            .Append(".verdict{display:flex;flex-wrap:wrap;gap:1em;margin:1em 0}.figure{background:#f6f8fa;border-radius:6px;padding:10px 14px;min-width:12em}")
            .Append(".figure b{display:block;font-size:1.6em}.figure span{color:#555;font-size:0.9em}")
            .Append(".gallery{display:flex;flex-wrap:wrap;gap:12px}.gallery figure{margin:0;width:128px;font-size:12px}.gallery img{width:128px;height:128px;border-radius:4px}")
            .Append(".gallery figcaption{word-break:break-all}\n")
            .Append("</style>\n</head>\n<body>\n");
        html.Append("<h1>").Append(E(report.Title)).Append("</h1>\n<p>Created ")
            .Append(E(report.CreatedUtc.ToString("u", CultureInfo.InvariantCulture))).Append("</p>\n");
        AppendVerdict(html, report);
        foreach (var warning in report.Warnings)
        {
            html.Append("<p class=\"note warning\" role=\"alert\">Warning: ").Append(E(warning)).Append("</p>\n");
        }
        foreach (var note in report.Notes)
        {
            html.Append("<p class=\"note info\">").Append(E(note)).Append("</p>\n");
        }

        if (report.Validation is { } validation)
        {
            html.Append("<h2>Validation</h2>\n<p>").Append(report.MultiLabel is null ? "Accuracy" : "Exact match (the predicted set of labels is the true set)").Append(" <b>").Append(Percent(validation.Accuracy)).Append("</b> on ")
                .Append(validation.Samples).Append(" images");
            if (report.BestEpoch is 0)
            {
                html.Append(" (the starting model, epoch 0: no epoch was clearly better on the validation images)");
            }
            else if (report.AveragedEpochs is { } averaged)
            {
                html.Append(" (the start moved towards the mean of epochs 1-").Append(averaged).Append(": see the notes)");
            }
            else if (report.BestEpoch is { } best)
            {
                html.Append(" (model from epoch ").Append(best).Append(')');
            }
            html.Append("; confidence threshold ").Append(F(report.ConfidenceThreshold));
            if (report.ClassThresholdGoal is { } goal)
            {
                html.Append(" (classes with a threshold of their own, chosen for ").Append(E(goal)).Append(": see Thresholds per class)");
            }
            html.Append(".</p>\n");
        }

        AppendPrecision(html, report);
        if (report.Steps.Count > 0)
        {
            html.Append("<h2>Time</h2>\n<p>").Append(E(StepTimes.Describe(report.Steps))).Append(".</p>\n");
        }

        AppendErrorGallery(html, report);
        AppendPrecisionRecall(html, report);

        if (report.MultiLabel is not null)
        {
            // One probe per label, each fitted to convergence with its own cross-validated strength: no epochs to chart.
        }
        else if (report.Probe is { Grid.Count: > 0 } probe)
        {
            // Head mode fits the probe to convergence once per L2 strength: its curve is the cross-validation, not epochs.
            html.Append("<h2>Cross-validation of the linear probe</h2>\n<p>Out-of-fold log-loss for each L2 strength tried (lower is better); the dashed line is the strength chosen, ")
                .Append("at which the head was refitted on every image.</p>\n<figure role=\"img\" aria-label=\"Out-of-fold loss against L2 strength\">")
                .Append(ReportCharts.ProbeCurve(probe)).Append("</figure>\n<table>\n<tr><th>L2 strength</th><th>Out-of-fold log-loss</th><th>Out-of-fold accuracy</th></tr>\n");
            foreach (var point in probe.Grid.OrderBy(p => p.Lambda))
            {
                html.Append(point.Lambda == probe.Lambda ? "<tr style=\"font-weight:bold\">" : "<tr>").Append("<td>").Append(point.Lambda.ToString("G3", CultureInfo.InvariantCulture))
                    .Append("</td><td>").Append(F(point.Loss)).Append("</td><td>").Append(Percent(point.Accuracy)).Append("</td></tr>\n");
            }
            html.Append("</table>\n");
        }
        else
        {
            html.Append("<h2>Training curves</h2>\n<div class=\"charts\">\n");
            AppendChart(html, "Loss", report.History, h => h.TrainLoss, h => h.ValidationLoss, isFraction: false);
            AppendChart(html, "Accuracy", report.History, h => h.TrainAccuracy, h => h.ValidationAccuracy, isFraction: true);
            html.Append("</div>\n");
            AppendHistoryTable(html, report.History);
        }

        AppendCalibration(html, report);

        if (report.Validation is { } coOccurrence && report.MultiLabel is not null)
        {
            html.Append("<h2>Label co-occurrence (rows: a label the image carries, columns: a label predicted for it)</h2>\n");
            AppendHeatMap(html, coOccurrence);
        }
        else if (report.Validation is { } metrics)
        {
            html.Append("<h2>Confusion matrix (validation; rows: true label, columns: predicted)</h2>\n");
            AppendHeatMap(html, metrics);
            var averagePrecision = PrecisionRecallCurve.For(report.Labels, report.Predictions).ToDictionary(c => c.Label, c => c.AveragePrecision, StringComparer.Ordinal);
            html.Append("<h2>Per class</h2>\n<table>\n<tr><th class=\"l\">Label</th><th>Precision</th><th>Recall</th><th>F1</th><th>Average precision</th><th>Support</th></tr>\n");
            foreach (var c in metrics.PerClass)
            {
                var ap = averagePrecision.GetValueOrDefault(c.Label, double.NaN);
                html.Append("<tr><td class=\"l\">").Append(E(c.Label)).Append("</td><td>").Append(F(c.Precision)).Append("</td><td>")
                    .Append(F(c.Recall)).Append("</td><td>").Append(F(c.F1)).Append("</td><td>").Append(double.IsFinite(ap) ? F(ap) : "-").Append("</td><td>")
                    .Append(c.Support).Append("</td></tr>\n");
            }
            html.Append("</table>\n");
        }

        AppendClassThresholds(html, report);
        AppendData(html, report);
        AppendSkipped(html, report.Skipped);

        html.Append("<h2>Settings</h2>\n<table>\n");
        foreach (var (name, value) in report.Settings)
        {
            html.Append("<tr><th class=\"l\">").Append(E(name)).Append("</th><td class=\"l\">").Append(E(value)).Append("</td></tr>\n");
        }
        html.Append("</table>\n</body>\n</html>\n");
        return html.ToString();
    }

    /// <summary>
    /// The verdict, first: accuracy and macro-F1 beside what always answering the largest validation class would score,
    /// and the calibration error beside the model's before temperature scaling.
    /// </summary>
    private static void AppendVerdict(StringBuilder html, TrainingReport report)
    {
        if (report.MultiLabel is { } multiLabel)
        {
            AppendMultiLabel(html, report, multiLabel);
            return;
        }
        if (report.Validation is not { Samples: > 0 } validation)
        {
            html.Append("<p class=\"note warning\">No validation figures: the run had no validation images.</p>\n");
            return;
        }
        var largest = validation.PerClass.Select(c => c.Support).DefaultIfEmpty(0).Max();
        var baselineAccuracy = (double)largest / validation.Samples;
        // Always the largest class: its F1 is 2p/(1+p) with p its share, every other class's 0.
        var baselineF1 = 2 * baselineAccuracy / (1 + baselineAccuracy) / Math.Max(1, report.Labels.Count);
        var better = validation.Accuracy > baselineAccuracy;
        html.Append("<section aria-label=\"Verdict\"><h2>Verdict</h2>\n<p class=\"note ").Append(better ? "info" : "warning").Append("\">")
            .Append(better
                ? $"The model is right on {Percent(validation.Accuracy)} of {validation.Samples} validation images, where always answering the largest class would be right on {Percent(baselineAccuracy)}."
                : $"The model does no better than always answering the largest class ({Percent(validation.Accuracy)} against {Percent(baselineAccuracy)} of {validation.Samples} validation images).")
            .Append("</p>\n<div class=\"verdict\">\n");
        Figure(html, "Accuracy", Percent(validation.Accuracy), $"largest class always: {Percent(baselineAccuracy)}");
        Figure(html, "Macro-F1", F2(validation.MacroF1), $"largest class always: {F2(baselineF1)}");
        if (report.Calibration is { } calibration)
        {
            Figure(html, "Calibration error", Percent(calibration.EceAfter), $"before temperature scaling: {Percent(calibration.EceBefore)}");
        }
        else if (report.Predictions.Count > 0)
        {
            Figure(html, "Calibration error", Percent(Calibration.ExpectedCalibrationError([.. report.Predictions.Select(p => (p.Correct, p.Confidence))])), "expected calibration error");
        }
        var curves = PrecisionRecallCurve.For(report.Labels, report.Predictions).Where(c => double.IsFinite(c.AveragePrecision)).ToList();
        if (curves.Count > 0)
        {
            var worst = curves.MinBy(c => c.AveragePrecision)!;
            Figure(html, "Weakest class", E(worst.Label), $"average precision {F2(worst.AveragePrecision)}");
        }
        html.Append("</div>\n<p>").Append(report.Probe is not null
            ? "Validation figures are out-of-fold: every image was scored by a head fitted without it."
            : "Validation figures are on the held-out validation images.").Append("</p></section>\n");
    }

    /// <summary>A multi-label model's verdict: mAP, macro F1 at the labels' thresholds beside a single 0.5, micro F1, exact match; then each label's figures and probe.</summary>
    private static void AppendMultiLabel(StringBuilder html, TrainingReport report, MultiLabelReport m)
    {
        html.Append("<section aria-label=\"Verdict\"><h2>Verdict (multi-label)</h2>\n<p class=\"note info\">A multi-label model: each label has its own probe and threshold; an image may carry any number of labels. ")
            .Append(report.BestEpoch is > 0
                ? $"Figures are on the {m.Samples} validation images, which the kept backbone never trained on; each was scored by probes fitted without it."
                : $"Figures are out-of-fold on {m.Samples} images: every image was scored by probes fitted without it.").Append("</p>\n<div class=\"verdict\">\n");
        Figure(html, "mAP", Percent(m.MeanAveragePrecision), "mean over labels of the average precision");
        Figure(html, "Macro-F1", F2(m.MacroF1), $"every threshold 0.5: {F2(m.MacroF1AtHalf)}");
        Figure(html, "Micro-F1", F2(m.MicroF1), "over every image-label decision");
        Figure(html, "Exact match", Percent(m.ExactMatch), "images whose predicted set is their true set");
        html.Append("</div></section>\n<h2>Per label, at its threshold</h2>\n<table>\n<tr><th class=\"l\">Label</th><th>Threshold</th><th>Precision</th><th>Recall</th><th>F1</th><th>Average precision</th><th>Images</th>")
            .Append("<th>L2</th><th>Temperature</th><th class=\"l\">Threshold rule</th></tr>\n");
        var probes = (report.LabelProbes ?? []).ToDictionary(p => p.Label, StringComparer.Ordinal);
        foreach (var l in m.PerLabel)
        {
            var probe = probes.GetValueOrDefault(l.Label);
            html.Append("<tr><td class=\"l\">").Append(E(l.Label)).Append("</td><td>").Append(F(l.Threshold)).Append("</td><td>").Append(F(l.Precision)).Append("</td><td>")
                .Append(F(l.Recall)).Append("</td><td>").Append(F(l.F1)).Append("</td><td>").Append(F(l.AveragePrecision)).Append("</td><td>").Append(l.Support).Append("</td><td>")
                .Append(probe is null ? "-" : probe.Lambda.ToString("G3", CultureInfo.InvariantCulture)).Append("</td><td>").Append(probe is null ? "-" : F(probe.Temperature))
                .Append("</td><td class=\"l\">").Append(E(probe?.Rule ?? "-")).Append(probe is { ClassWeighted: true } ? E("; class-weighted") : "").Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void Figure(StringBuilder html, string name, string value, string detail) =>
        html.Append("<div class=\"figure\"><span>").Append(E(name)).Append("</span><b>").Append(value).Append("</b><span>").Append(E(detail)).Append("</span></div>\n");

    private static void AppendPrecisionRecall(StringBuilder html, TrainingReport report)
    {
        var curves = PrecisionRecallCurve.For(report.Labels, report.Predictions, report.MultiLabel is not null);
        if (report.Predictions.Count == 0 || curves.All(c => c.Recall.Length == 0))
        {
            return;
        }
        html.Append("<h2>Precision and recall per class</h2>\n<p>Each class against the rest, over the scores of the validation predictions: ")
            .Append("how precise the class's answers stay as the threshold falls to find more of it. Average precision (AP) sums the curve.</p>\n")
            .Append("<figure role=\"img\" aria-label=\"Precision-recall curves\">").Append(ReportCharts.PrecisionRecall(curves)).Append("</figure>\n");
    }

    private static void AppendErrorGallery(StringBuilder html, TrainingReport report)
    {
        var wrong = report.Predictions.Count(p => !p.Correct);
        if (report.Predictions.Count == 0)
        {
            return;
        }
        html.Append("<h2>Images it got wrong (").Append(wrong).Append(")</h2>\n");
        if (wrong == 0)
        {
            html.Append("<p>None: every validation image was classified correctly.</p>\n");
            return;
        }
        html.Append("<p>The most confident mistakes first").Append(report.Errors.Count < wrong ? $" ({report.Errors.Count} shown)" : "")
            .Append(": the model's view of each image (the resized centre crop)")
            .Append(report.Errors.Any(e => e.HasMap) ? ", warm where the served model found the wrong label" : "")
            .Append(".</p>\n<div class=\"gallery\">\n");
        foreach (var image in report.Errors)
        {
            html.Append("<figure><img alt=\"").Append(E(image.Source)).Append("\" src=\"data:image/jpeg;base64,").Append(image.ThumbnailJpegBase64).Append("\">")
                .Append("<figcaption><b>").Append(E(image.Predicted)).Append("</b> ").Append(Percent(image.Confidence)).Append("<br>true: ").Append(E(image.Actual))
                .Append("<br><span style=\"color:#666\">").Append(E(image.Source)).Append("</span></figcaption></figure>\n");
        }
        html.Append("</div>\n");
    }

    private static string F2(double value) => value.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>Each class's threshold (<c>--class-thresholds</c>): what its answers give at it and at the single threshold.</summary>
    private static void AppendClassThresholds(StringBuilder html, TrainingReport report)
    {
        if (report.ClassThresholds is not { } choices)
        {
            return;
        }
        html.Append("<h2>Thresholds per class</h2>\n<p>Chosen for ").Append(E(report.ClassThresholdGoal ?? "")).Append(" on the same predictions as the figures above. ")
            .Append("A top answer of a class below its threshold is served as <code>unknown</code>; a request's <code>threshold=</code> replaces them all. ")
            .Append("Precision and recall are of the class's top-1 answers at that threshold (recall over every image of the class).</p>\n")
            .Append("<table>\n<tr><th class=\"l\">Label</th><th>Threshold</th><th>Answered</th><th>Precision</th><th>Recall</th><th>F1</th>")
            .Append("<th>Precision at ").Append(F(report.ConfidenceThreshold)).Append("</th><th>Recall at ").Append(F(report.ConfidenceThreshold)).Append("</th><th class=\"l\">Note</th></tr>\n");
        foreach (var c in choices)
        {
            var at = c.Own ?? c.AtSingle;
            html.Append("<tr><td class=\"l\">").Append(E(c.Label)).Append("</td><td>").Append(F(at.Threshold)).Append(c.Own is null ? " (single)" : "").Append("</td><td>")
                .Append(at.Answered).Append("</td><td>").Append(F(at.Precision)).Append("</td><td>").Append(F(at.Recall)).Append("</td><td>").Append(F(at.F1)).Append("</td><td>")
                .Append(F(c.AtSingle.Precision)).Append("</td><td>").Append(F(c.AtSingle.Recall)).Append("</td><td class=\"l\">").Append(E(c.Note ?? "")).Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void AppendPrecision(StringBuilder html, TrainingReport report)
    {
        html.Append("<h2>Precision</h2>\n<p>The model serves the <b>").Append(report.Precision.ToString().ToLowerInvariant()).Append("</b> graph");
        if (report.Quantization is not { } q)
        {
            html.Append("; no int8 graph was made.</p>\n");
            return;
        }
        html.Append(q.Accepted ? "; the int8 graph passed its check" : "; the int8 graph was not kept: its accuracy fell more than the limit below fp32's")
            .Append(".</p>\n<table>\n<tr><th class=\"l\">Check on ").Append(q.ValidationImages).Append(' ').Append(E(q.Evidence ?? "validation")).Append(" images</th><th>fp32</th><th>int8</th></tr>\n")
            .Append("<tr><td class=\"l\">Accuracy</td><td>").Append(Percent(q.Fp32Accuracy)).Append("</td><td>").Append(Percent(q.Int8Accuracy)).Append("</td></tr>\n")
            .Append("<tr><td class=\"l\">Graph size</td><td>").Append(Megabytes(q.Fp32Bytes)).Append("</td><td>").Append(Megabytes(q.Int8Bytes)).Append("</td></tr>\n")
            .Append("</table>\n<p>Top-1 agreement ").Append(Percent(q.Top1Agreement)).Append("; largest probability difference ").Append(F(q.MaxProbabilityDifference))
            .Append("; accuracy drop ").Append(q.AccuracyDropPoints.ToString("0.0", CultureInfo.InvariantCulture)).Append(" points").Append(E(ServerlessClassifier.ModelCore.Export.Quantization.ServingGraph.Spread(q))).Append(" (at most ")
            .Append(F(q.MaxAccuracyDropPoints)).Append(" allowed). Calibrated on ").Append(q.CalibrationImages).Append(" training images; ")
            .Append(E(q.Scheme)).Append(". Checked with ").Append(E(q.CheckedOn ?? "an unrecorded runtime")).Append(".</p>\n");
        if (q.Accepted && Commands.Train.TrainRun.WeightBitsNote(q.WeightBits, report.PortableGraph) is { Length: > 0 } bits)
        {
            // Which CPUs the served graph's weights suit, and the graph the package carries for the others (the manifest's portableGraph).
            html.Append("<p>Weights: ").Append(E(bits.TrimStart(';', ' '))).Append(".</p>\n");
        }
    }

    private static string Megabytes(long bytes) => (bytes / 1048576.0).ToString("0.0", CultureInfo.InvariantCulture) + " MB";

    private static void AppendData(StringBuilder html, TrainingReport report)
    {
        var data = report.Data;
        html.Append("<h2>Data</h2>\n<p>").Append(data.TotalTrain).Append(" training and ").Append(data.TotalValidation)
            .Append(" validation images in ").Append(report.Labels.Count).Append(" classes. Class imbalance (largest / smallest training class): ")
            .Append(double.IsInfinity(data.ImbalanceRatio) ? "a class has no training images" : data.ImbalanceRatio.ToString("0.00", CultureInfo.InvariantCulture))
            .Append(".</p>\n");
        var max = Math.Max(1, data.Train.Values.DefaultIfEmpty(0).Max());
        html.Append("<table>\n<tr><th class=\"l\">Label</th><th>Train</th><th>Validation</th><th class=\"l\">Share of the largest class</th></tr>\n");
        foreach (var label in report.Labels)
        {
            var train = data.Train.GetValueOrDefault(label);
            var width = (int)Math.Round(200.0 * train / max);
            html.Append("<tr><td class=\"l\">").Append(E(label)).Append("</td><td>").Append(train).Append("</td><td>")
                .Append(data.Validation.GetValueOrDefault(label)).Append("</td><td class=\"l\"><svg width=\"200\" height=\"10\" role=\"img\"><rect width=\"")
                .Append(width).Append("\" height=\"10\" fill=\"#4c78a8\"/></svg></td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void AppendSkipped(StringBuilder html, IReadOnlyList<SkippedImage> skipped)
    {
        html.Append("<h2>Skipped images (").Append(skipped.Count).Append(")</h2>\n");
        if (skipped.Count == 0)
        {
            html.Append("<p>None.</p>\n");
            return;
        }
        html.Append("<table>\n<tr><th class=\"l\">File</th><th class=\"l\">Reason</th></tr>\n");
        foreach (var s in skipped)
        {
            html.Append("<tr><td class=\"l\">").Append(E(s.File)).Append("</td><td class=\"l\">").Append(E(s.Reason)).Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void AppendHistoryTable(StringBuilder html, IReadOnlyList<EpochMetrics> history)
    {
        html.Append("<table>\n<tr><th>Epoch</th><th>Train loss</th><th>Train accuracy</th><th>Val loss</th><th>Val accuracy</th><th>Training images/s</th></tr>\n");
        foreach (var h in history)
        {
            html.Append("<tr><td>").Append(h.Epoch).Append("</td><td>").Append(F(h.TrainLoss)).Append("</td><td>").Append(Percent(h.TrainAccuracy))
                .Append("</td><td>").Append(double.IsFinite(h.ValidationLoss) ? F(h.ValidationLoss) : "-").Append("</td><td>")
                .Append(double.IsFinite(h.ValidationAccuracy) ? Percent(h.ValidationAccuracy) : "-").Append("</td><td>")
                .Append(h.ImagesPerSecond > 0 ? h.ImagesPerSecond.ToString("F1", CultureInfo.InvariantCulture) : "-").Append("</td></tr>\n");
        }
        html.Append("</table>\n");
    }

    private static void AppendCalibration(StringBuilder html, TrainingReport report)
    {
        if (report.Predictions.Count == 0)
        {
            return;
        }
        var ece = Calibration.ExpectedCalibrationError([.. report.Predictions.Select(p => (p.Correct, p.Confidence))]);
        html.Append("<h2>Calibration</h2>\n<p>Expected calibration error of these predictions ").Append(Percent(ece));
        if (report.Calibration is { } calibration)
        {
            html.Append(" (").Append(E(calibration.Evidence)).Append(" predictions of ").Append(calibration.Images.ToString(CultureInfo.InvariantCulture))
                .Append(" images; before temperature scaling ").Append(Percent(calibration.EceBefore)).Append(", after ")
                .Append(Percent(calibration.EceAfter)).Append(" with temperature ").Append(F(calibration.Temperature)).Append(')');
        }
        html.Append(". A bar below the diagonal means the model was more confident than right in that bin.</p>\n")
            .Append("<figure role=\"img\" aria-label=\"Reliability diagram\">").Append(ReportCharts.Reliability(report.Predictions)).Append("</figure>\n");
    }

    private static void AppendChart(StringBuilder html, string title, IReadOnlyList<EpochMetrics> history, Func<EpochMetrics, double> train, Func<EpochMetrics, double> validation, bool isFraction) =>
        html.Append("<figure role=\"img\" aria-label=\"").Append(E(title)).Append(" per epoch\">")
            .Append(ReportCharts.EpochChart(title, history, train, validation, isFraction)).Append("</figure>\n");

    private static void AppendHeatMap(StringBuilder html, EvaluationReport metrics)
    {
        // A table whose cells are shaded by the row-normalised count: readable for any number of
        // classes, copyable, and the colour needs no script.
        html.Append("<table>\n<tr><th class=\"l\">true \\ predicted</th>");
        foreach (var label in metrics.Labels)
        {
            html.Append("<th>").Append(E(label)).Append("</th>");
        }
        html.Append("</tr>\n");
        for (var i = 0; i < metrics.ConfusionMatrix.Count; i++)
        {
            var row = metrics.ConfusionMatrix[i];
            var total = Math.Max(1, row.Sum());
            html.Append("<tr><th class=\"l\">").Append(E(metrics.Labels[i])).Append("</th>");
            for (var j = 0; j < row.Count; j++)
            {
                var share = (double)row[j] / total;
                var alpha = share.ToString("0.00", CultureInfo.InvariantCulture);
                var hue = i == j ? "76,120,168" : "228,87,86";
                html.Append("<td style=\"background:rgba(").Append(hue).Append(',').Append(alpha).Append(");color:")
                    .Append(share > 0.6 ? "#fff" : "#222").Append("\">").Append(row[j]).Append("</td>");
            }
            html.Append("</tr>\n");
        }
        html.Append("</table>\n");
    }

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string F(double value) => value.ToString("0.####", CultureInfo.InvariantCulture);

    private static string Percent(double value) => value.ToString("0.0%", CultureInfo.InvariantCulture);
}
