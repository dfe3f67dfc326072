using System.Text.Json.Serialization;

namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// One model of <c>GET /api/models</c>: its name, the version its <c>current.json</c> names, the version this instance has
/// loaded (null when none), and its current version's kind (<c>multiClass</c> or <c>multiLabel</c>; null when that
/// version's manifest cannot be read) with, for a multi-label model, each label's threshold.
/// </summary>
public sealed record ModelListEntry(
    string Name,
    string? CurrentVersion,
    string? LoadedVersion,
    string? Kind,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyDictionary<string, double>? LabelThresholds);

/// <summary>The body of <c>GET /api/models</c>.</summary>
public sealed record ModelList(IReadOnlyList<ModelListEntry> Models);
