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
            Validation = report.Validation is { } v ? MetricsJson.Create(v) : null,
            report.Skipped,
            report.Notes,
            report.Probe,
            report.Calibration,
            Precision = report.Precision.ToString().ToLowerInvariant(),
            report.Quantization,
        }, Options);
    }
}
