using System.Text.Json;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Tells the manifest formats apart by their first row and parses one line at a time (so a manifest of
/// a million rows streams). A line that cannot be parsed is an error naming the file and line; a row without an image
/// or a label comes back with that part null. A row with several labels (several label columns, an Azure ML label
/// array, Ground Truth multilabel metadata) comes back with all of them in <see cref="ManifestRow.Labels"/>: whether
/// the manifest is multi-label is <see cref="DataManifest"/>'s decision, over all its rows.
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
        // Vertex AI's multi-label CSV puts each label in a column of its own: [ML_USE,]uri,label1,label2,...
        var labels = fields.Skip(1).Where(f => f.Length > 0).ToList();
        return Row(number, Blank(fields[0]), labels, split, multiLabelForm: labels.Count > 1);
    }

    private static ManifestRow ParseAzureML(string line, int number, string path)
    {
        using var json = ParseJson(line, path, number);
        var root = json.RootElement;
        var image = root.TryGetProperty("image_url", out var url) && url.ValueKind == JsonValueKind.String ? url.GetString() : null;
        List<string> labels = [];
        var multiLabelForm = false;
        if (root.TryGetProperty("label", out var value))
        {
            if (value.ValueKind == JsonValueKind.Array)
            {
                // AutoML's multi-label form: "label": ["cat", "dog"] ([] for an image with none of the labels).
                labels = [.. value.EnumerateArray().Select(v => v.ToString().Trim()).Where(v => v.Length > 0)];
                multiLabelForm = labels.Count > 1;
            }
            else if (value.ValueKind is JsonValueKind.String or JsonValueKind.Number && Blank(value.ToString()) is { } one)
            {
                labels = [one];
            }
        }
        return Row(number, Blank(image), labels, ManifestSplit.None, multiLabelForm);
    }

    private static ManifestRow ParseGroundTruth(string line, int number, string path)
    {
        using var json = ParseJson(line, path, number);
        var root = json.RootElement;
        var image = root.TryGetProperty("source-ref", out var source) && source.ValueKind == JsonValueKind.String ? source.GetString() : null;
        string? label = null;
        List<string>? multi = null;
        foreach (var property in root.EnumerateObject().Where(p => p.Name.EndsWith("-metadata", StringComparison.Ordinal) && p.Value.ValueKind == JsonValueKind.Object))
        {
            var type = property.Value.TryGetProperty("type", out var t) ? t.GetString() ?? "" : "";
            if (type.Contains("multilabel", StringComparison.OrdinalIgnoreCase) || property.Value.TryGetProperty("class-map", out _) && !property.Value.TryGetProperty("class-name", out _))
            {
                multi = multi is null ? GroundTruthLabels(root, property, path, number)
                    : throw new DatasetException($"{path} line {number}: more than one label attribute has multilabel metadata; keep one label attribute per manifest.");
                continue;
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
        if (multi is not null)
        {
            return label is null
                ? Row(number, Blank(image), multi, ManifestSplit.None, multiLabelForm: true)
                : throw new DatasetException($"{path} line {number}: one label attribute has a class-name and another multilabel metadata; keep one label attribute per manifest.");
        }
        return Row(number, Blank(image), Blank(label) is { } one ? [one] : [], ManifestSplit.None, multiLabelForm: false);
    }

    /// <summary>
    /// Ground Truth's multi-label form: <c>"&lt;job&gt;": [0, 2]</c> (class ids) with <c>"&lt;job&gt;-metadata": {"class-map": {"0": "cat", "2": "dog"}, ...}</c>.
    /// Without the id array, every class the map lists.
    /// </summary>
    private static List<string> GroundTruthLabels(JsonElement root, JsonProperty metadata, string path, int number)
    {
        var map = metadata.Value.TryGetProperty("class-map", out var m) && m.ValueKind == JsonValueKind.Object
            ? m.EnumerateObject().ToDictionary(p => p.Name, p => p.Value.ToString().Trim(), StringComparer.Ordinal)
            : throw new DatasetException($"{path} line {number}: \"{metadata.Name}\" is multilabel metadata without a class-map; the trainer cannot tell the labels' names.");
        var attribute = metadata.Name[..^"-metadata".Length];
        if (!root.TryGetProperty(attribute, out var ids) || ids.ValueKind != JsonValueKind.Array)
        {
            return [.. map.Values.Where(v => v.Length > 0)];
        }
        var labels = new List<string>();
        foreach (var id in ids.EnumerateArray())
        {
            labels.Add(map.TryGetValue(id.ToString(), out var name) && name.Length > 0
                ? name
                : throw new DatasetException($"{path} line {number}: class id {id} of \"{attribute}\" is not in its class-map."));
        }
        return labels;
    }

    private static ManifestRow Row(int number, string? image, List<string> labels, ManifestSplit split, bool multiLabelForm) =>
        new(number, image, labels.Count == 1 ? labels[0] : null, split) { Labels = labels, MultiLabelForm = multiLabelForm };

    private static ManifestSplit? ParseMlUse(string field) => field.Trim().ToUpperInvariant() switch
    {
        "TRAINING" or "TRAIN" => ManifestSplit.Training,
        "VALIDATION" or "VALIDATE" => ManifestSplit.Validation,
        "TEST" => ManifestSplit.Test,
        "UNASSIGNED" => ManifestSplit.None,
        _ => null,
    };

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
