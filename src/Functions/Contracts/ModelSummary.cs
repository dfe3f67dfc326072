using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// The body of <c>GET /api/model</c>: what this instance is serving. <see cref="Kind"/> is <c>multiClass</c> or
/// <c>multiLabel</c>. <see cref="Threshold"/> is the single threshold; <see cref="ClassThresholds"/> (null when none) the
/// classes that have their own; <see cref="LabelThresholds"/> (a multi-label model's only) each label's threshold.
/// </summary>
public sealed record ModelSummary(
    string Version,
    IReadOnlyList<string> Labels,
    string Backbone,
    ValidationMetrics? Metrics,
    double Threshold,
    int InputSize,
    DateTimeOffset CreatedUtc,
    DateTimeOffset LoadedUtc,
    string Precision,
    IReadOnlyDictionary<string, double>? ClassThresholds,
    string Kind,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, double>? LabelThresholds)
{
    /// <summary>How the API names a model's kind: <c>multiClass</c> or <c>multiLabel</c>.</summary>
    public static string KindName(ModelKind kind) => kind == ModelKind.MultiLabel ? "multiLabel" : "multiClass";

    /// <summary>A multi-label model's thresholds by label; null for a multi-class model.</summary>
    public static IReadOnlyDictionary<string, double>? LabelThresholdsOf(ModelManifest manifest)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        return manifest is { Kind: ModelKind.MultiLabel, LabelThresholds: { } thresholds }
            ? manifest.Labels.Zip(thresholds).ToDictionary(p => p.First, p => p.Second, StringComparer.Ordinal)
            : null;
    }
}
