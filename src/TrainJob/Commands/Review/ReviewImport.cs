using System.Globalization;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review import</c>: each image file of a sorted export (matched to <c>review.csv</c> by file name) is labelled by
/// the folder it is in now and goes through <see cref="ReviewLabeling.ApplyAsync"/>: removed from the queue, then
/// staged for approval with a record of who labelled it (<see cref="OperatorIdentity"/>); <c>_discard/</c> only leaves
/// the queue (recorded too). With <c>--approve</c> the operator approves what they staged at once
/// (<see cref="ReviewApprove"/>: into the training data, never overwriting); otherwise <c>review approve</c> does it
/// later. Every folder name is checked before anything is written. Files not in review.csv are skipped and named.
/// A multi-label model's uploads (in <c>_multilabel/</c>) are labelled by the export's <c>labels.csv</c> row instead: a set of
/// labels, or none (a negative); every label in it is checked before anything is written, and an image without a row, or
/// moved into a class folder, is skipped and named (it stays queued).
/// </summary>
internal static class ReviewImport
{
    public static async Task<int> RunAsync(CliContext context, string folder, string? reviewerName, bool approve, string? data, CancellationToken cancellationToken)
    {
        var csv = Path.Combine(folder, ReviewCsv.FileName);
        if (!File.Exists(csv))
        {
            throw new UsageException($"{folder} has no {ReviewCsv.FileName}; pass a folder written by review export.");
        }
        if (data is not null && !approve)
        {
            throw new UsageException("--data names where approved images go: use it with --approve, or later with review approve.");
        }
        var rows = ReviewCsv.Read(csv).ToDictionary(r => Path.GetFileName(r.File), StringComparer.Ordinal);
        var files = Directory.EnumerateDirectories(folder).Order(StringComparer.Ordinal)
            .SelectMany(d => Directory.EnumerateFiles(d).Order(StringComparer.Ordinal).Select(f => (Label: Path.GetFileName(d), File: f)))
            .ToList();
        var bad = files.Select(f => f.Label).Distinct(StringComparer.Ordinal)
            .Where(l => l != ReviewCommands.DiscardFolder && l != ReviewCommands.MultiLabelFolder && ReviewCommands.FolderLabelProblem(l) is not null)
            .Select(l => $"\"{l}\" {ReviewCommands.FolderLabelProblem(l)}").ToList();
        if (bad.Count > 0)
        {
            throw new UsageException($"these folders of {folder} cannot be labels: {string.Join("; ", bad)}. Rename them (or move their images to {ReviewCommands.DiscardFolder}/); nothing was imported.");
        }
        // A multi-label model's uploads are labelled by the export's labels.csv: every label in it is checked before anything is written too.
        var labelsCsv = Path.Combine(folder, TrainingImages.MultiLabelCsv);
        var multiLabels = File.Exists(labelsCsv) ? ReviewCsv.ReadMultiLabel(labelsCsv) : [];
        if (ReviewLabeling.MultiLabelProblem(multiLabels.Values.SelectMany(l => l)) is { } labelProblem)
        {
            throw new UsageException($"{labelsCsv}: {labelProblem}. Correct it; nothing was imported.");
        }
        if (approve)
        {
            ReviewCommands.Training(context, data); // a bad --data is refused before anything is written
        }
        var reviewer = await OperatorIdentity.ResolveAsync(context, reviewerName, "--reviewer", cancellationToken);
        var queue = context.Storage.ReviewQueue();
        // Each image's model (its queue item's) decides which classes are new: a named model's uploads are checked against its own.
        var classes = new Dictionary<string, IReadOnlySet<string>>(StringComparer.Ordinal);
        var items = new Dictionary<string, ReviewItem?>(StringComparer.Ordinal);
        foreach (var row in rows.Values)
        {
            items[row.Image] = (await queue.GetAsync(row.Image, cancellationToken))?.Item;
        }
        var models = items.ToDictionary(i => i.Key, i => i.Value?.Model, StringComparer.Ordinal);
        if (approve)
        {
            ReviewCommands.TrainingFor(context, data, models.Values); // --data with a named model's images is refused before anything is written
        }
        var labels = context.Storage.ReviewLabels();
        var outcomes = new Dictionary<LabelOutcome, int>();
        var staged = new List<LabelRecord>();
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
            var inMultiLabelFolder = label == ReviewCommands.MultiLabelFolder;
            var isMultiLabel = items.GetValueOrDefault(row.Image)?.IsMultiLabel ?? inMultiLabelFolder;
            List<string>? ticked = null;
            if (!isDiscard && (isMultiLabel != inMultiLabelFolder || inMultiLabelFolder && !multiLabels.TryGetValue(name, out ticked)))
            {
                context.Error(isMultiLabel != inMultiLabelFolder
                    ? $"skipped {Path.GetRelativePath(folder, file)}: {row.Image} is a {(isMultiLabel ? $"multi-label model's upload, labelled in {TrainingImages.MultiLabelCsv}: move it back to {ReviewCommands.MultiLabelFolder}/" : "multi-class model's upload: move it into its label's folder")} (it stays queued)"
                    : $"skipped {Path.GetRelativePath(folder, file)}: {TrainingImages.MultiLabelCsv} has no row for it (it stays queued)");
                continue;
            }
            var bytes = isDiscard ? ReadOnlyMemory<byte>.Empty : await File.ReadAllBytesAsync(file, cancellationToken);
            var model = models.GetValueOrDefault(row.Image);
            if (!classes.TryGetValue(model ?? ModelNames.Default, out var live))
            {
                live = classes[model ?? ModelNames.Default] = await ReviewCommands.LiveClassesAsync(context, model, cancellationToken);
            }
            var decision = ticked is not null
                ? LabelDecision.MultiLabel(ticked, reviewer, ticked.Any(l => !live.Contains(l)), DateTimeOffset.UtcNow)
                : new LabelDecision(isDiscard ? null : label, reviewer, !isDiscard && !live.Contains(label), DateTimeOffset.UtcNow);
            var (outcome, record) = await ReviewLabeling.ApplyAsync(queue, labels, row.Image, row.ImageVersion, name, bytes, decision, cancellationToken);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if (outcome == LabelOutcome.Staged)
            {
                staged.Add(record!);
            }
        }
        var missing = rows.Count - seen.Count;
        context.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Staged {staged.Count} labels by {reviewer.Name} ({ReviewCommands.CountByLabel(staged)}); {outcomes.GetValueOrDefault(LabelOutcome.Discarded)} discarded; " +
            $"{outcomes.GetValueOrDefault(LabelOutcome.NotQueued)} were no longer queued in the exported version; {outcomes.GetValueOrDefault(LabelOutcome.AlreadyStaged)} had a label waiting already; " +
            $"{missing} exported images were not found in {folder} and stay queued."));
        foreach (var file in unknown)
        {
            context.Error($"skipped {file}: not in {ReviewCsv.FileName} (only exported images are imported)");
        }
        if (approve)
        {
            return await ReviewApprove.DecideAsync(context, labels, staged.Select(s => s.Id).ToList(), approve: true, ReviewCommands.TrainingFor(context, data, staged.Select(s => s.Model)), reviewer, cancellationToken);
        }
        if (staged.Count > 0)
        {
            context.WriteLine("Nothing reaches the training data until it is approved: review approve --all (or --label <label>, or image names).");
        }
        return ExitCodes.Ok;
    }
}
