namespace ServerlessClassifier.ModelCore.Data;

/// <summary>One manifest row as written: its line number, image reference and label (either may be missing) and split.</summary>
/// <param name="Label">The label when the row has exactly one; null for none or several.</param>
internal readonly record struct ManifestRow(int Line, string? Image, string? Label, ManifestSplit Split)
{
    /// <summary>Every label the row lists, as written (a cell is not split here), in order.</summary>
    public IReadOnlyList<string> Labels { get; init; } = [];

    /// <summary>True when the row is written in a multi-label form: several labels, or Ground Truth multilabel metadata.</summary>
    public bool MultiLabelForm { get; init; }
}
