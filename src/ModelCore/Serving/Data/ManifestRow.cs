namespace ServerlessClassifier.ModelCore.Data;

/// <summary>One manifest row as written: its line number, image reference and label (either may be missing) and split.</summary>
internal readonly record struct ManifestRow(int Line, string? Image, string? Label, ManifestSplit Split);
