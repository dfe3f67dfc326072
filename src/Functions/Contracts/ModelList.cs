namespace ServerlessClassifier.Functions.Contracts;

/// <summary>One model of <c>GET /api/models</c>: its name, the version its <c>current.json</c> names, and the version this instance has loaded (null when none).</summary>
public sealed record ModelListEntry(string Name, string? CurrentVersion, string? LoadedVersion);

/// <summary>The body of <c>GET /api/models</c>.</summary>
public sealed record ModelList(IReadOnlyList<ModelListEntry> Models);
