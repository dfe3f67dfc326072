namespace ServerlessClassifier.Bench;

/// <summary>
/// The sections of docs/benchmarks.md that another benchmark writes, each between two markers: that benchmark
/// rewrites only its section, and the main benchmark, which rewrites the rest of the file, keeps them.
/// </summary>
internal static class DocumentSections
{
    public static readonly Section Architectures = new("architecture benchmark", "bench/Architectures: bash scripts/bench-architectures.sh");

    public static readonly Section TrainingMemory = new("training memory benchmark", "bench/TrainingMemory: bash scripts/bench-training-memory.sh");

    /// <summary>Every such section, in the order the main benchmark keeps them.</summary>
    public static readonly Section[] All = [Architectures, TrainingMemory];

    /// <summary>The section with its markers as the file has it, or null.</summary>
    public static string? Extract(string path, Section section)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        var text = File.ReadAllText(path);
        var (start, end) = (text.IndexOf(section.BeginPrefix, StringComparison.Ordinal), text.IndexOf(section.End, StringComparison.Ordinal));
        return start >= 0 && end > start ? text[start..(end + section.End.Length)] : null;
    }

    /// <summary>Puts <paramref name="body"/> between the section's markers, replacing what was there, or at the end of the file.</summary>
    public static void Replace(string path, Section section, string body)
    {
        var marked = $"{section.Begin}\n{body.TrimEnd()}\n{section.End}";
        var text = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n";
        var old = Extract(path, section);
        text = old is null ? $"{text.TrimEnd()}\n\n{marked}\n" : text.Replace(old, marked, StringComparison.Ordinal);
        File.WriteAllText(path, text);
    }

    /// <summary>A marked section: its name and the benchmark that writes it.</summary>
    internal sealed record Section(string Name, string Writer)
    {
        public string BeginPrefix => $"<!-- begin: {Name} ";

        public string Begin => $"<!-- begin: {Name} (written by {Writer}) -->";

        public string End => $"<!-- end: {Name} -->";
    }
}
