using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// A manifest of labelled images, read line by line (a large manifest streams; only the list of images
/// is kept). The format is detected from the content (<see cref="ManifestFormat"/>); references resolve as
/// <see cref="ManifestSources"/> says. Rows that name no image, have no label, name a local file that does
/// not exist, or list an image again are skipped and reported, never dropped silently; another cloud's URI or a hostile
/// label stops the read with a message naming the line. A multi-label manifest (<see cref="MultiLabel"/>) keeps rows
/// without a label: they are negatives.
/// </summary>
public sealed class DataManifest
{
    /// <summary>Separates labels within one cell of a multi-label manifest (<c>img.png,"cat;dog"</c>).</summary>
    public const char MultiLabelSeparator = ';';

    private DataManifest(DataManifestInfo info, List<ManifestImage> images, List<SkippedImage> skipped, bool multiLabel)
    {
        MultiLabel = multiLabel;
        Info = info;
        Images = images;
        Skipped = skipped;
    }

    public DataManifestInfo Info { get; }

    /// <summary>True when the manifest was read as multi-label: every image carries a set of labels (<see cref="LabeledImage.Labels"/>), possibly empty.</summary>
    public bool MultiLabel { get; }

    /// <summary>The images accepted, in manifest order.</summary>
    public IReadOnlyList<ManifestImage> Images { get; }

    /// <summary>Rows left out while reading (no image, no label, missing local file, listed twice).</summary>
    public IReadOnlyList<SkippedImage> Skipped { get; }

    /// <summary>The file beside a manifest that gives Custom Vision tag ids: <c>customvision.csv</c> has <c>customvision.tags.json</c>.</summary>
    public static string TagIdsPath(string manifestPath) => Path.ChangeExtension(manifestPath, ".tags.json");

    /// <summary>
    /// Tag ids by name from <see cref="TagIdsPath"/> (a JSON array of <c>{"id": "&lt;guid&gt;", "name": "&lt;tag&gt;"}</c>, Custom Vision's
    /// <c>GET projects/{id}/tags</c> answer); null when the file does not exist.
    /// </summary>
    /// <exception cref="DatasetException">The file is not such an array.</exception>
    private static async Task<IReadOnlyDictionary<string, Guid>?> ReadTagIdsAsync(string manifestPath, CancellationToken cancellationToken)
    {
        var path = TagIdsPath(manifestPath);
        if (!File.Exists(path))
        {
            return null;
        }
        var ids = new Dictionary<string, Guid>(StringComparer.Ordinal);
        try
        {
            using var json = System.Text.Json.JsonDocument.Parse(await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false));
            foreach (var tag in json.RootElement.EnumerateArray())
            {
                var name = tag.GetProperty("name").GetString();
                if (string.IsNullOrEmpty(name) || !Guid.TryParse(tag.GetProperty("id").GetString(), out var id))
                {
                    throw new DatasetException($"{path}: every tag needs a \"name\" and an \"id\" that is a GUID.");
                }
                ids[name] = id;
            }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or KeyNotFoundException)
        {
            throw new DatasetException($"{path} is not a list of Custom Vision tags ([{{\"id\": \"<guid>\", \"name\": \"<tag>\"}}, ...]): {e.Message}");
        }
        return ids;
    }

    /// <exception cref="DatasetException">The file is missing, empty or not a manifest, or a row cannot be used (see the class remarks).</exception>
    /// <param name="options">Only <see cref="DatasetOptions.MultiLabel"/> is read: true reads every row as a set of labels; null detects it.</param>
    public static async Task<DataManifest> ReadAsync(string path, ManifestSources sources, DatasetOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new DatasetOptions();
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(sources);
        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new DatasetException($"The manifest {full} does not exist.");
        }
        string sha256;
        await using (var stream = File.OpenRead(full))
        {
            sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
        }
        var resolver = new ImageReferenceResolver(full, sources);
        var images = new List<ManifestImage>();
        var skipped = new List<SkippedImage>();
        var seen = new Dictionary<(string Container, string Path), (int Line, string Label)>();
        var labels = new Dictionary<string, string>(StringComparer.Ordinal); // one string per label, not per row
        ManifestFormat? format = null;
        var rows = new List<ManifestRow>();
        var number = 0;
        using (var reader = new StreamReader(full, Encoding.UTF8, detectEncodingFromByteOrderMarks: true))
        {
            while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                number++;
                if (string.IsNullOrWhiteSpace(line))
                {
                    continue;
                }
                var first = format is null;
                format ??= ManifestParser.Detect(line, full);
                if (ManifestParser.Parse(format.Value, line, number, first, full) is { } row)
                {
                    rows.Add(row); // not the header
                }
            }
        }
        if (format is null)
        {
            throw new DatasetException($"The manifest {full} is empty.");
        }
        // Multi-label when asked, or when any row is written in a multi-label form (several labels, Ground Truth
        // multilabel metadata); then every row is a set of labels (a cell's ';' separates labels) and a row with none is a
        // negative. Otherwise exactly as before multi-label existed: one label per row, a row without one skipped.
        var multiLabel = options.MultiLabel ?? rows.Any(r => r.MultiLabelForm);
        foreach (var row in rows)
        {
            number = row.Line;
            if (row.Image is null)
            {
                skipped.Add(new SkippedImage($"line {number}", SkipCodes.Missing, $"line {number} names no image"));
                continue;
            }
            string label;
            IReadOnlyList<string>? set = null;
            if (multiLabel)
            {
                set = [.. row.Labels.SelectMany(l => l.Split(MultiLabelSeparator, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
                    .Select(l => Intern(labels, l, full, number)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
                label = MultiLabelKey(set);
            }
            else if (row.Labels.Count > 1)
            {
                throw new DatasetException($"{full} line {number}: the image has several labels ({string.Join(", ", row.Labels.Select(l => JsonSerializer.Serialize(l)))}); " +
                    "this multi-class read takes one label per image: train with --multilabel for a multi-label model, or give every image exactly one label.");
            }
            else if (row.Label is null)
            {
                skipped.Add(new SkippedImage(row.Image, SkipCodes.Unlabelled, $"line {number} has no label"));
                continue;
            }
            else
            {
                label = Intern(labels, row.Label, full, number);
            }
            if (resolver.Resolve(row.Image, number) is not { } image)
            {
                skipped.Add(new SkippedImage(row.Image, SkipCodes.Missing, $"line {number}: no such file"));
                continue;
            }
            if (seen.TryGetValue(image.Key, out var earlier))
            {
                var conflict = earlier.Label == label ? "" : $" as \"{label}\"; line {earlier.Line} says \"{earlier.Label}\", which is used";
                skipped.Add(new SkippedImage(image.Source, SkipCodes.Duplicate, $"line {number} lists it again (first on line {earlier.Line}){conflict}"));
                continue;
            }
            seen.Add(image.Key, (number, label));
            images.Add(new ManifestImage(new LabeledImage(image.Source, label, image.Bytes, image.ReadAsync) { Labels = set }, row.Split));
        }
        return new DataManifest(new DataManifestInfo(full, format.Value, sha256, rows.Count) { TagIds = await ReadTagIdsAsync(full, cancellationToken).ConfigureAwait(false) }, images, skipped, multiLabel);
    }

    /// <summary>The stratum a multi-label image is split by, and its <see cref="LabeledImage.Label"/>: its labels joined by the separator, empty for none.</summary>
    internal static string MultiLabelKey(IReadOnlyList<string> labels) => string.Join(MultiLabelSeparator, labels);

    private static string Intern(Dictionary<string, string> labels, string value, string path, int number)
    {
        if (!labels.TryGetValue(value, out var label))
        {
            label = TrainingLayout.ValidateLabel(value, $"{path} line {number}", "fix it in the manifest");
            labels.Add(label, label);
        }
        return label;
    }

    /// <summary>
    /// The listing to build a data set from. Rows marked TRAINING and VALIDATION fix the split (then every
    /// row must say, TEST included); rows marked TEST are held out of both.
    /// </summary>
    internal DatasetListing ToListing()
    {
        var warnings = new List<string>();
        var test = Images.Count(i => i.Split == ManifestSplit.Test);
        if (test > 0)
        {
            warnings.Add($"{test} image(s) marked TEST in the manifest are held out (neither trained nor validated on); measure the model on them with evaluate --data {Info.Path}.");
        }
        var explicitSplit = Images.Any(i => i.Split is ManifestSplit.Training or ManifestSplit.Validation);
        var unassigned = Images.Count(i => i.Split == ManifestSplit.None);
        if (explicitSplit && unassigned > 0)
        {
            throw new DatasetException(
                $"{Info.Path}: {unassigned} row(s) have no ML_USE (or UNASSIGNED) while others are TRAINING or VALIDATION. Give every row TRAINING, VALIDATION or TEST, " +
                "or none of them (then the trainer splits each class by --val-split).");
        }
        var train = Images.Where(i => i.Split == (explicitSplit ? ManifestSplit.Training : ManifestSplit.None)).Select(i => i.Image).ToList();
        var val = explicitSplit ? Images.Where(i => i.Split == ManifestSplit.Validation).Select(i => i.Image).ToList() : null;
        return new DatasetListing(Info.Path, train, val, [.. Skipped], warnings, Info) { MultiLabel = MultiLabel };
    }
}
