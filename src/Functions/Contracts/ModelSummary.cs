using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.Functions.Contracts;

/// <summary>The body of <c>GET /api/model</c>: what this instance is serving.</summary>
public sealed record ModelSummary(
    string Version,
    IReadOnlyList<string> Labels,
    string Backbone,
    ValidationMetrics? Metrics,
    double Threshold,
    int InputSize,
    DateTimeOffset CreatedUtc,
    DateTimeOffset LoadedUtc,
    string Precision);
