using System.Globalization;
using System.Text;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>One row of <c>review.csv</c>: an exported image file and what the model said about it.</summary>
internal sealed record ReviewCsvRow(string File, string Label, string Image, string ImageVersion, string? ModelVersion, double Confidence, double Margin,
    double? OutOfDistribution, string Reasons, DateTimeOffset QueuedUtc);

/// <summary>
/// <c>review.csv</c> (RFC 4180: fields with a comma, quote or line break are quoted, quotes doubled): the header
/// <c>file,label,image,imageVersion,modelVersion,confidence,margin,outOfDistribution,reasons,queuedUtc</c>, one row
/// per exported image; <c>file</c> is the path under the export folder as written (<c>&lt;label&gt;/&lt;name&gt;</c>).
/// People open it in a spreadsheet: every field is written through <see cref="Csv.Protect"/>, so a blob name or label
/// beginning with <c>=</c>, <c>+</c>, <c>-</c>, <c>@</c> or a tab is shown as text, never run as a formula, and read
/// back through <see cref="Csv.Unprotect"/>, so import sees the names export wrote.
/// </summary>
internal static class ReviewCsv
{
    public const string FileName = "review.csv";

    private static readonly string[] Header = ["file", "label", "image", "imageVersion", "modelVersion", "confidence", "margin", "outOfDistribution", "reasons", "queuedUtc"];

    public static void Write(string path, IEnumerable<ReviewCsvRow> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(string.Join(',', Header));
        foreach (var r in rows)
        {
            string[] fields =
            [
                r.File, r.Label, r.Image, r.ImageVersion, r.ModelVersion ?? "",
                r.Confidence.ToString("0.0000", CultureInfo.InvariantCulture), r.Margin.ToString("0.0000", CultureInfo.InvariantCulture),
                r.OutOfDistribution?.ToString("0.0000", CultureInfo.InvariantCulture) ?? "", r.Reasons, r.QueuedUtc.ToString("O", CultureInfo.InvariantCulture),
            ];
            text.AppendLine(Csv.Format(fields.Select(Csv.Protect)));
        }
        File.WriteAllText(path, text.ToString(), new UTF8Encoding(false));
    }

    /// <summary>
    /// The export's <c>labels.csv</c> for a multi-label model's uploads: <c>image,labels</c> (the multi-label layout
    /// <c>train --multilabel</c> reads), every field through <see cref="Csv.Protect"/> as in review.csv.
    /// </summary>
    public static void WriteMultiLabel(string path, IEnumerable<string[]> rows)
    {
        var text = new StringBuilder();
        text.AppendLine(string.Join(',', MultiLabelHeader));
        foreach (var row in rows)
        {
            text.AppendLine(Csv.Format(row.Select(Csv.Protect)));
        }
        File.WriteAllText(path, text.ToString(), new UTF8Encoding(false));
    }

    private static readonly string[] MultiLabelHeader = ["image", "labels"];

    /// <summary>
    /// An export's <c>labels.csv</c> as a person left it: each image's file name (the last part of its path) to its labels, ';'
    /// between them, each once (an empty cell: none). A malformed file, a row without two fields or a file named twice is an error naming the record.
    /// </summary>
    public static Dictionary<string, List<string>> ReadMultiLabel(string path)
    {
        var records = ReadRecords(path);
        if (records.Count == 0 || !records[0].Select(h => h.Trim()).SequenceEqual(MultiLabelHeader, StringComparer.OrdinalIgnoreCase))
        {
            throw new InvalidDataException($"{path} does not start with the header {string.Join(',', MultiLabelHeader)} (is it a review export's labels.csv?).");
        }
        var labels = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (var i = 1; i < records.Count; i++)
        {
            var f = records[i].ConvertAll(Csv.Unprotect);
            if (f.Count == 1 && f[0].Length == 0)
            {
                continue; // a blank line
            }
            if (f.Count != 2)
            {
                throw new InvalidDataException($"{path} record {i + 1} has {f.Count} fields, not 2 (image,labels; put several labels in one cell, between quotes if you like, separated by ';').");
            }
            var set = f[1].Split(DataManifest.MultiLabelSeparator, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).ToList();
            if (!labels.TryAdd(Path.GetFileName(f[0]), set))
            {
                throw new InvalidDataException($"{path} record {i + 1} names {f[0]} a second time.");
            }
        }
        return labels;
    }

    /// <summary>The rows of a <c>review.csv</c>; a malformed file is an error naming the line.</summary>
    public static List<ReviewCsvRow> Read(string path)
    {
        var records = ReadRecords(path);
        if (records.Count == 0 || !records[0].SequenceEqual(Header))
        {
            throw new InvalidDataException($"{path} does not start with the header {string.Join(',', Header)} (is it a review export's review.csv?).");
        }
        var rows = new List<ReviewCsvRow>();
        for (var i = 1; i < records.Count; i++)
        {
            var f = records[i].ConvertAll(Csv.Unprotect);
            if (f.Count != Header.Length)
            {
                throw new InvalidDataException($"{path} record {i + 1} has {f.Count} fields, not {Header.Length}.");
            }
            rows.Add(new ReviewCsvRow(f[0], f[1], f[2], f[3], f[4].Length == 0 ? null : f[4],
                double.Parse(f[5], CultureInfo.InvariantCulture), double.Parse(f[6], CultureInfo.InvariantCulture),
                f[7].Length == 0 ? null : double.Parse(f[7], CultureInfo.InvariantCulture), f[8], DateTimeOffset.Parse(f[9], CultureInfo.InvariantCulture)));
        }
        return rows;
    }

    /// <summary>Every record of a CSV file; a malformed file is an error naming the file.</summary>
    private static List<List<string>> ReadRecords(string path)
    {
        try
        {
            using var reader = new StreamReader(path, Encoding.UTF8);
            return [.. Csv.ReadRecords(reader)];
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}.", e);
        }
    }
}
