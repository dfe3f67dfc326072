using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>The JSON shape of an <see cref="EvaluationReport"/> (shared by report.json and <c>evaluate --json</c>).</summary>
public static class MetricsJson
{
    public static Dictionary<string, object> Create(EvaluationReport metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        return new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["accuracy"] = metrics.Accuracy,
            ["samples"] = metrics.Samples,
            ["labels"] = metrics.Labels,
            ["perClass"] = metrics.PerClass.ToDictionary(c => c.Label, c => new { c.Precision, c.Recall, c.F1, c.Support }, StringComparer.Ordinal),
            ["confusion"] = metrics.ConfusionMatrix,
        };
    }
}
