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

    /// <summary>
    /// A field a spreadsheet will show as text (OWASP "CSV injection"): a field beginning with <c>= + - @</c>, a tab or
    /// a line break would be run as a formula when the file is opened, so it gets a single quote in front; so does a
    /// field that begins with a single quote, so that <see cref="Unprotect"/> can tell the two apart. Other fields are
    /// unchanged. For files people open in a spreadsheet and this program reads back (<c>review.csv</c>).
    /// </summary>
    public static string Protect(string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return field.Length > 0 && (IsFormulaStart(field[0]) || field[0] == '\'') ? "'" + field : field;
    }

    /// <summary>
    /// The field <see cref="Protect"/> was given: one leading single quote is dropped when a formula character or
    /// another single quote follows it (a line break counts, as the reader turns a carriage return into one).
    /// </summary>
    public static string Unprotect(string field)
    {
        ArgumentNullException.ThrowIfNull(field);
        return field.Length > 1 && field[0] == '\'' && (IsFormulaStart(field[1]) || field[1] == '\'') ? field[1..] : field;
    }

    private static bool IsFormulaStart(char c) => c is '=' or '+' or '-' or '@' or '\t' or '\r' or '\n';

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
