using System.Text.Json;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Tells the manifest formats apart by their first row and parses one line at a time (so a manifest of
/// a million rows streams). A line that cannot be parsed, or a row with more than one label, is an
/// error naming the file and line; a row without an image or a label comes back with that part null.
/// </summary>
internal static class ManifestParser
{
    private static readonly string[] ImageHeaders = ["image", "image_url", "image_path", "path", "file", "filename", "uri", "url", "gcs_file_path"];
    private static readonly string[] LabelHeaders = ["label", "labels", "class", "class_name", "tag", "category"];

    /// <summary>The format, from the first non-blank line.</summary>
    public static ManifestFormat Detect(string firstLine, string path)
    {
        if (firstLine.TrimStart().StartsWith('{'))
        {
            using var json = ParseJson(firstLine, path, 1);
            var root = json.RootElement;
            return root.TryGetProperty("source-ref", out _) ? ManifestFormat.GroundTruth
                : root.TryGetProperty("image_url", out _) ? ManifestFormat.AzureMLJsonl
                : throw new DatasetException($"{path}: the first row is JSON with neither \"image_url\" (Azure ML AutoML JSONL) nor \"source-ref\" (SageMaker Ground Truth / Rekognition); this is not a manifest the trainer reads.");
        }
        var fields = SplitCsv(firstLine, 1, path);
        return fields.Count >= 2 && (ParseMlUse(fields[0]) is not null || fields[0].Equals("ml_use", StringComparison.OrdinalIgnoreCase)
                || fields[0].StartsWith("gs://", StringComparison.OrdinalIgnoreCase))
            ? ManifestFormat.VertexCsv
            : ManifestFormat.Csv;
    }

    /// <summary>The row a line holds, or null for a CSV header (only the first line may be one).</summary>
    public static ManifestRow? Parse(ManifestFormat format, string line, int number, bool first, string path) => format switch
    {
        ManifestFormat.Csv or ManifestFormat.VertexCsv => ParseCsv(line, number, first, path),
        ManifestFormat.AzureMLJsonl => ParseAzureML(line, number, path),
        ManifestFormat.GroundTruth => ParseGroundTruth(line, number, path),
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, null),
    };

    private static ManifestRow? ParseCsv(string line, int number, bool first, string path)
    {
        var fields = SplitCsv(line, number, path);
        while (fields.Count > 1 && fields[^1].Length == 0)
        {
            fields.RemoveAt(fields.Count - 1); // trailing commas
        }
        if (first && fields.Count >= 2
            && (ImageHeaders.Contains(fields[0], StringComparer.OrdinalIgnoreCase) || fields[0].Equals("ml_use", StringComparison.OrdinalIgnoreCase))
            && LabelHeaders.Contains(fields[^1], StringComparer.OrdinalIgnoreCase))
        {
            return null;
        }
        var split = ManifestSplit.None;
        // Vertex AI puts ML_USE first: TRAINING,gs://b/1.jpg,cat (or TEST,gs://b/2.jpg for an unlabelled image).
        if ((fields.Count >= 3 || (fields.Count == 2 && fields[1].Contains("://", StringComparison.Ordinal))) && ParseMlUse(fields[0]) is { } mlUse)
        {
            split = mlUse;
            fields.RemoveAt(0);
        }
        var labels = fields.Skip(1).Where(f => f.Length > 0).ToList();
        if (labels.Count > 1)
        {
            throw MultiLabel(path, number, labels);
        }
        return new ManifestRow(number, Blank(fields[0]), labels.FirstOrDefault(), split);
    }

    private static ManifestRow ParseAzureML(string line, int number, string path)
    {
        using var json = ParseJson(line, path, number);
        var root = json.RootElement;
        var image = root.TryGetProperty("image_url", out var url) && url.ValueKind == JsonValueKind.String ? url.GetString() : null;
        string? label = null;
        if (root.TryGetProperty("label", out var value))
        {
            if (value.ValueKind == JsonValueKind.Array)
            {
                var labels = value.EnumerateArray().Select(v => v.ToString()).Where(v => v.Length > 0).ToList();
                label = labels.Count <= 1 ? labels.FirstOrDefault() : throw MultiLabel(path, number, labels);
            }
            else if (value.ValueKind is JsonValueKind.String or JsonValueKind.Number)
            {
                label = value.ToString();
            }
        }
        return new ManifestRow(number, Blank(image), Blank(label), ManifestSplit.None);
    }

    private static ManifestRow ParseGroundTruth(string line, int number, string path)
    {
        using var json = ParseJson(line, path, number);
        var root = json.RootElement;
        var image = root.TryGetProperty("source-ref", out var source) && source.ValueKind == JsonValueKind.String ? source.GetString() : null;
        string? label = null;
        foreach (var property in root.EnumerateObject().Where(p => p.Name.EndsWith("-metadata", StringComparison.Ordinal) && p.Value.ValueKind == JsonValueKind.Object))
        {
            var type = property.Value.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            if (type.Contains("multilabel", StringComparison.OrdinalIgnoreCase) || property.Value.TryGetProperty("class-map", out _) && !property.Value.TryGetProperty("class-name", out _))
            {
                var names = property.Value.TryGetProperty("class-map", out var map) && map.ValueKind == JsonValueKind.Object
                    ? map.EnumerateObject().Select(p => p.Value.ToString()).ToList()
                    : ["(several)"];
                throw MultiLabel(path, number, names);
            }
            if (type.Contains("object-detection", StringComparison.OrdinalIgnoreCase))
            {
                throw new DatasetException($"{path} line {number}: \"{property.Name}\" is an object-detection label (bounding boxes); the trainer reads image-classification manifests (one class-name per image).");
            }
            if (property.Value.TryGetProperty("class-name", out var name) && name.ValueKind == JsonValueKind.String)
            {
                label = label is null ? name.GetString() : throw new DatasetException($"{path} line {number}: more than one label attribute has a class-name; keep one label attribute per manifest.");
            }
        }
        return new ManifestRow(number, Blank(image), Blank(label), ManifestSplit.None);
    }

    private static ManifestSplit? ParseMlUse(string field) => field.Trim().ToUpperInvariant() switch
    {
        "TRAINING" or "TRAIN" => ManifestSplit.Training,
        "VALIDATION" or "VALIDATE" => ManifestSplit.Validation,
        "TEST" => ManifestSplit.Test,
        "UNASSIGNED" => ManifestSplit.None,
        _ => null,
    };

    private static DatasetException MultiLabel(string path, int number, IEnumerable<string> labels) =>
        new($"{path} line {number}: the image has several labels ({string.Join(", ", labels.Select(l => JsonSerializer.Serialize(l)))}); " +
            "multi-label classification is not supported yet. Give every image exactly one label (one row per image).");

    private static JsonDocument ParseJson(string line, string path, int number)
    {
        try
        {
            return JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new DatasetException($"{path} line {number} is not valid JSON ({e.Message}); each line of a JSONL manifest is one JSON object.", e);
        }
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    /// <summary>One CSV line's fields (<see cref="Csv.Split"/>), trimmed; an unclosed quote is an error naming the line.</summary>
    private static List<string> SplitCsv(string line, int number, string path)
    {
        try
        {
            return [.. Csv.Split(line).Select(f => f.Trim())];
        }
        catch (FormatException e)
        {
            throw new DatasetException($"{path} line {number}: {e.Message} (a CSV manifest has one row per line).", e);
        }
    }
}
