using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.TrainJob.Commands.Review;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary><c>review.csv</c> is opened in spreadsheets and read back by <c>review import</c>.</summary>
public sealed class ReviewCsvTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("review-csv-").FullName;

    public void Dispose() => Directory.Delete(folder, recursive: true);

    /// <summary>
    /// Blob names and labels beginning with a formula character (OWASP CSV injection) are written with a single quote in
    /// front, so no field of the file starts one; import reads every field back as export had it.
    /// </summary>
    [Fact]
    public void FieldsThatASpreadsheetWouldRunAsFormulas_AreWrittenAsText_AndReadBackUnchanged()
    {
        string[] hostile =
        [
            "=HYPERLINK(\"http://example.test\",\"x\").png", "+1+1.png", "-2+3.png", "@SUM(A1).png", "\tcmd.png", "'quoted.png", "''=twice.png",
            "'=already.png", "plain.png", "a=b.png", "=", "'",
        ];
        var rows = hostile.Select((name, i) => new ReviewCsvRow($"{(i % 2 == 0 ? "=cmd" : "cat")}/{name}", i % 2 == 0 ? "=cmd" : "-cat", $"@uploads/{name}",
            "-0x8D", i % 3 == 0 ? null : "+v1", 0.25, 0.05, i % 2 == 0 ? null : 1.5, "lowMargin", new DateTimeOffset(2026, 12, 6, 7, 0, 0, TimeSpan.Zero))).ToList();
        var path = Path.Combine(folder, ReviewCsv.FileName);

        ReviewCsv.Write(path, rows);

        Assert.Equal(rows, ReviewCsv.Read(path));
        using var reader = new StreamReader(path);
        var written = Csv.ReadRecords(reader).Skip(1).SelectMany(record => record).ToList();
        Assert.DoesNotContain(written, field => field.Length > 0 && field[0] is '=' or '+' or '-' or '@' or '\t' or '\r' or '\n');
        Assert.Contains("'@uploads/" + hostile[0], written);
    }

    [Theory]
    [InlineData("=1+1", "'=1+1")]
    [InlineData("\r=1", "'\r=1")]
    [InlineData("'a", "''a")]
    [InlineData("a", "a")]
    [InlineData("", "")]
    public void Protect_PrefixesFormulaStartsAndLeadingQuotes_AndUnprotectUndoesIt(string field, string protectedField)
    {
        Assert.Equal(protectedField, Csv.Protect(field));
        Assert.Equal(field, Csv.Unprotect(Csv.Protect(field)));
    }
}
