using System.Text;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// The one CSV reader and writer (RFC 4180): fields separated by commas; a field in double quotes may hold commas,
/// line breaks and doubled quotes (<c>""</c>). Manifests (<see cref="ManifestParser"/>) read a record per line;
/// <c>review.csv</c> reads whole records, quoted line breaks included (<see cref="ReadRecords"/>).
/// </summary>
public static class Csv
{
    /// <summary>
    /// The fields of one record. A quote opens a quoted field when only spaces precede it in the field (they are
    /// dropped); fields are returned as written otherwise (trim them where spaces do not matter).
    /// </summary>
    /// <exception cref="FormatException">A quoted field is not closed.</exception>
    public static List<string> Split(string record)
    {
        ArgumentNullException.ThrowIfNull(record);
        return TrySplit(record, out var fields) ? fields : throw new FormatException("a quoted field is not closed");
    }

    /// <summary>
    /// Every record of <paramref name="reader"/>: a line, or several when a quoted field holds line breaks
    /// (<c>\n</c> inside the field, whatever the file's line ends). A last line that is empty ends the text.
    /// </summary>
    /// <exception cref="FormatException">The text ends inside a quoted field.</exception>
    public static IEnumerable<List<string>> ReadRecords(TextReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        while (reader.ReadLine() is { } line)
        {
            var record = line;
            List<string> fields;
            while (!TrySplit(record, out fields))
            {
                record += "\n" + (reader.ReadLine() ?? throw new FormatException("the text ends inside a quoted field"));
            }
            yield return fields;
        }
    }

    /// <summary>The field as written to a record: in quotes (quotes doubled) when it holds a comma, a quote or a line break.</summary>
    public static string Quote(string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return field.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{field.Replace("\"", "\"\"", StringComparison.Ordinal)}\"" : field;
    }

    /// <summary>One record of fields, quoted where needed, joined by commas.</summary>
    public static string Format(IEnumerable<string> fields) => string.Join(',', fields.Select(Quote));

    /// <summary>False when the record ends inside a quoted field (it continues on the next line).</summary>
    private static bool TrySplit(string record, out List<string> fields)
    {
        fields = [];
        var field = new StringBuilder();
        var quoted = false;
        for (var i = 0; i < record.Length; i++)
        {
            var c = record[i];
            if (quoted)
            {
                if (c != '"')
                {
                    field.Append(c);
                }
                else if (i + 1 < record.Length && record[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else
                {
                    quoted = false;
                }
            }
            else if (c == '"' && string.IsNullOrWhiteSpace(field.ToString()))
            {
                field.Clear();
                quoted = true;
            }
            else if (c == ',')
            {
                fields.Add(field.ToString());
                field.Clear();
            }
            else
            {
                field.Append(c);
            }
        }
        fields.Add(field.ToString());
        return !quoted;
    }
}
