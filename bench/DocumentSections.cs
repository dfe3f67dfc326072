namespace ServerlessClassifier.Bench;

/// <summary>
/// The architecture benchmark's section of docs/benchmarks.md, between two markers: that benchmark
/// rewrites only its section, and the main benchmark, which rewrites the rest of the file, keeps it.
/// </summary>
internal static class DocumentSections
{
    private const string Begin = "<!-- begin: architecture benchmark (written by bench/Architectures: bash scripts/bench-architectures.sh) -->";
    private const string End = "<!-- end: architecture benchmark -->";

    /// <summary>The section with its markers as the file has it, or null.</summary>
    public static string? Extract(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        var text = File.ReadAllText(path);
        var (start, end) = (text.IndexOf(Begin, StringComparison.Ordinal), text.IndexOf(End, StringComparison.Ordinal));
        return start >= 0 && end > start ? text[start..(end + End.Length)] : null;
    }

    /// <summary>Puts <paramref name="section"/> between the markers, replacing what was there, or at the end of the file.</summary>
    public static void Replace(string path, string section)
    {
        var marked = $"{Begin}\n{section.TrimEnd()}\n{End}";
        var text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n";
        var old = Extract(path);
        text = old is null ? $"{text.TrimEnd()}\n\n{marked}\n" : text.Replace(old, marked, StringComparison.Ordinal);
        File.WriteAllText(path, text);
    }
}
