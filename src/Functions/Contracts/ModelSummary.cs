using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// The body of <c>GET /api/model</c>: what this instance is serving. <see cref="Threshold"/> is the single threshold;
/// <see cref="ClassThresholds"/> (null when none) the classes that have their own.
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
    IReadOnlyDictionary<string, double>? ClassThresholds);
