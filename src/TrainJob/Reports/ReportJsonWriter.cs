using System.Text.Json;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary><c>report.json</c>: the report's numbers for scripts.</summary>
public static class ReportJsonWriter
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string Write(TrainingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var ratio = report.Data.ImbalanceRatio;
        return JsonSerializer.Serialize(new
        {
            report.Title,
            report.CreatedUtc,
            Settings = report.Settings.ToDictionary(s => s.Key, s => s.Value),
            report.Labels,
            Data = new { report.Data.Train, report.Data.Validation, ImbalanceRatio = double.IsFinite(ratio) ? ratio : (double?)null },
            report.History,
            report.BestEpoch,
            report.ConfidenceThreshold,
            report.ClassThresholdGoal,
            ClassThresholds = report.ClassThresholds?.Select(c => new { c.Label, c.Threshold, Own = c.Own is not null, c.Support, AtThreshold = c.Own ?? c.AtSingle, c.AtSingle, c.Note }),
            Validation = report.Validation is { } v ? MetricsJson.Create(v) : null,
            report.Skipped,
            Steps = report.Steps.Select(s => new { s.Step, s.Seconds }),
            report.Notes,
            report.Warnings,
            AveragePrecision = PrecisionRecallCurve.For(report.Labels, report.Predictions, report.MultiLabel is not null)
                .ToDictionary(c => c.Label, c => double.IsFinite(c.AveragePrecision) ? c.AveragePrecision : (double?)null),
            Errors = report.Errors.Select(e => new { e.Source, e.Actual, e.Predicted, e.Confidence }),
            report.Probe,
            report.Calibration,
            Precision = report.Precision.ToString().ToLowerInvariant(),
            report.Quantization,
            PortableGraph = report.PortableGraph is { } portable ? new { portable.File, Precision = portable.Precision.ToString().ToLowerInvariant(), portable.Quantization } : null,
            MultiLabel = report.MultiLabel is { } m ? new
            {
                m.Samples,
                m.MicroF1,
                m.MacroF1,
                m.MacroF1AtHalf,
                m.MeanAveragePrecision,
                m.ExactMatch,
                m.PerLabel,
                Probes = report.LabelProbes,
            } : null,
        }, Options);
    }
}
