namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Lists a local ImageFolder layout <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c>, or
/// <c>&lt;root&gt;/train|val/&lt;label&gt;/&lt;file&gt;</c> when both of those folders exist. Nested folders
/// inside a label folder belong to that label; hidden files and symbolic links are ignored.
/// </summary>
internal static class FolderListing
{
    public static DatasetListing List(string root)
    {
        var warnings = new List<string>();
        var explicitSplit = Directory.Exists(Path.Combine(root, TrainingLayout.TrainFolder)) && Directory.Exists(Path.Combine(root, TrainingLayout.ValFolder));
        var train = ListSplit(root, explicitSplit ? TrainingLayout.TrainFolder : null, warnings);
        var val = explicitSplit ? ListSplit(root, TrainingLayout.ValFolder, warnings) : null;
        return new DatasetListing(root, train, val, [], warnings);
    }

    private static List<LabeledImage> ListSplit(string root, string? split, List<string> warnings)
    {
        var folder = split is null ? root : Path.Combine(root, split);
        var skip = new EnumerationOptions { AttributesToSkip = FileAttributes.Hidden | FileAttributes.System | FileAttributes.ReparsePoint, IgnoreInaccessible = true };
        var recurse = new EnumerationOptions { AttributesToSkip = skip.AttributesToSkip, IgnoreInaccessible = true, RecurseSubdirectories = true };
        foreach (var file in Directory.EnumerateFiles(folder, "*", skip).Where(f => !Path.GetFileName(f).StartsWith('.')))
        {
            warnings.Add($"{Path.GetRelativePath(root, file)} is not inside a label folder and is ignored.");
        }
        var result = new List<LabeledImage>();
        foreach (var directory in Directory.EnumerateDirectories(folder, "*", skip))
        {
            var name = Path.GetFileName(directory);
            if (name.StartsWith('.'))
            {
                continue;
            }
            var label = TrainingLayout.ValidateLabel(name, directory);
            foreach (var file in Directory.EnumerateFiles(directory, "*", recurse))
            {
                var relative = Path.GetRelativePath(root, file).Replace(Path.DirectorySeparatorChar, '/');
                if (relative.Split('/').Any(s => s.StartsWith('.')))
                {
                    continue;
                }
                var path = file;
                result.Add(new LabeledImage(relative, label, new FileInfo(file).Length, ct => File.ReadAllBytesAsync(path, ct)));
            }
        }
        return result;
    }
}
