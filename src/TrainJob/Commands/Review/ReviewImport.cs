using System.Globalization;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review import</c>: each image file of a sorted export (matched to <c>review.csv</c> by file name) is labelled by
/// the folder it is in now and goes through <see cref="ReviewLabeling.ApplyAsync"/>: added to the training data
/// (never overwriting) and removed from the queue; <c>_discard/</c> only leaves the queue. Every folder name is
/// checked before anything is written. Files not in review.csv are skipped and named.
/// </summary>
internal static class ReviewImport
{
    public static async Task<int> RunAsync(CliContext context, string folder, string? data, CancellationToken cancellationToken)
    {
        var csv = Path.Combine(folder, ReviewCsv.FileName);
        if (!File.Exists(csv))
        {
            throw new UsageException($"{folder} has no {ReviewCsv.FileName}; pass a folder written by review export.");
        }
        var rows = ReviewCsv.Read(csv).ToDictionary(r => Path.GetFileName(r.File), StringComparer.Ordinal);
        var files = Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal)
            .SelectMany(d => Directory.EnumerateFiles(d).Order(StringComparer.Ordinal).Select(f => (Label: Path.GetFileName(d), File: f)))
            .ToList();
        var bad = files.Select(f => f.Label).Distinct(StringComparer.Ordinal)
            .Where(l => l != ReviewCommands.DiscardFolder && ReviewCommands.FolderLabelProblem(l) is not null)
            .Select(l => $"\"{l}\" {ReviewCommands.FolderLabelProblem(l)}").ToList();
        if (bad.Count > 0)
        {
            throw new UsageException($"these folders of {folder} cannot be labels: {string.Join("; ", bad)}. Rename them (or move their images to {ReviewCommands.DiscardFolder}/); nothing was imported.");
        }
        var training = ReviewCommands.Training(context, data);
        var queue = context.Storage.ReviewQueue();
        var outcomes = new Dictionary<LabelOutcome, int>();
        var added = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var unknown = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (label, file) in files)
        {
            var name = Path.GetFileName(file);
            if (!rows.TryGetValue(name, out var row) || !seen.Add(name))
            {
                unknown.Add(Path.GetRelativePath(folder, file));
                continue;
            }
            var isDiscard = label == ReviewCommands.DiscardFolder;
            var bytes = isDiscard ? ReadOnlyMemory<byte>.Empty : await File.ReadAllBytesAsync(file, cancellationToken);
            var (outcome, _) = await ReviewLabeling.ApplyAsync(queue, training, row.Image, row.ImageVersion, isDiscard ? null : label, name, bytes, cancellationToken);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if (outcome == LabelOutcome.Added)
            {
                added[label] = added.GetValueOrDefault(label) + 1;
            }
        }
        var missing = rows.Count - seen.Count;
        context.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Added {outcomes.GetValueOrDefault(LabelOutcome.Added)} images to {training.Description} ({(added.Count == 0 ? "none" : string.Join(", ", added.Select(a => $"{a.Key} {a.Value}")))}); " +
            $"{outcomes.GetValueOrDefault(LabelOutcome.AlreadyPresent)} were there already; {outcomes.GetValueOrDefault(LabelOutcome.Discarded)} discarded; " +
            $"{outcomes.GetValueOrDefault(LabelOutcome.NotQueued)} discarded images were no longer queued; {missing} exported images were not found in {folder} and stay queued."));
        foreach (var file in unknown)
        {
            context.Error($"skipped {file}: not in {ReviewCsv.FileName} (only exported images are imported)");
        }
        return ExitCodes.Ok;
    }
}
