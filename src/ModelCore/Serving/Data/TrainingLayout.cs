using System.Text.Json;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// The layout of labelled training data, the one rule for what reads it (<see cref="ImageFolderDataset"/>: a folder,
/// a blob prefix or a manifest) and what writes it (<see cref="TrainingImages"/>: the review queue's labels): one
/// folder per label, <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c>, or <c>&lt;root&gt;/train|val/&lt;label&gt;/&lt;file&gt;</c>
/// when the root has both a <c>train</c> and a <c>val</c> folder (they then fix the split). So <c>train</c> and
/// <c>val</c> cannot be labels: two labels of those names would turn every other label folder into one that is ignored.
/// </summary>
public static class TrainingLayout
{
    /// <summary>With <see cref="ValFolder"/> beside it: the training split's folder.</summary>
    public const string TrainFolder = "train";

    /// <summary>With <see cref="TrainFolder"/> beside it: the validation split's folder.</summary>
    public const string ValFolder = "val";

    /// <summary>Longest label accepted.</summary>
    public const int MaxLabelLength = 200;

    /// <summary>
    /// Null when <paramref name="label"/> can be a class (a folder or blob path segment, a manifest's label), else what
    /// is wrong with it: empty or blank, over 200 characters, control characters, a path separator, <c>.</c> or
    /// <c>..</c>, a leading <c>.</c> (hidden: such a folder is never read), a leading or trailing space, or one of the
    /// split folders' names <c>train</c> and <c>val</c> (in any case: case-insensitive file systems).
    /// </summary>
    public static string? LabelProblem(string? label) => label switch
    {
        null => "is empty or blank",
        _ when string.IsNullOrWhiteSpace(label) => "is empty or blank",
        _ when label.Length > MaxLabelLength => $"is {label.Length} characters long (at most {MaxLabelLength})",
        _ when label.Any(char.IsControl) => "contains control characters",
        "." or ".." => "is a relative path segment",
        _ when label.IndexOfAny(['/', '\\']) >= 0 => "contains a path separator",
        _ when label.StartsWith('.') => "starts with '.' (a hidden folder, which training never reads)",
        _ when label.Trim() != label => "starts or ends with a space",
        _ when IsSplitFolder(label) => $"is reserved: folders named {TrainFolder} and {ValFolder} fix the training and validation split",
        _ => null,
    };

    /// <summary>Returns <paramref name="label"/> when <see cref="LabelProblem"/> finds nothing wrong with it.</summary>
    /// <param name="label">The label.</param>
    /// <param name="where">Where it was found, for the message (a folder, a blob, a manifest line).</param>
    /// <param name="fix">What to do about it, for the message.</param>
    /// <exception cref="DatasetException">The label cannot be a class; the message names it, where it was found and the fix.</exception>
    public static string ValidateLabel(string label, string where, string fix = "rename that folder")
    {
        ArgumentNullException.ThrowIfNull(label);
        return LabelProblem(label) is { } problem
            ? throw new DatasetException($"Label {JsonSerializer.Serialize(label)} (from {where}) {problem}; {fix}.")
            : label;
    }

    /// <summary>True for the names of the split folders, <c>train</c> and <c>val</c> (case-insensitive).</summary>
    public static bool IsSplitFolder(string name) =>
        string.Equals(name, TrainFolder, StringComparison.OrdinalIgnoreCase) || string.Equals(name, ValFolder, StringComparison.OrdinalIgnoreCase);
}
