using System.Globalization;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review approve</c> and <c>review reject</c>: the operator's decision on staged labels (the review page's and
/// <c>review import</c>'s), chosen by image name, by label, or all of them. Each goes through
/// <see cref="ReviewLabeling.DecideAsync"/>: recorded with who decided (<see cref="OperatorIdentity"/>), then an
/// approved image added to the training data (<c>--data</c>, default the training container) under its label.
/// </summary>
internal static class ReviewApprove
{
    public static async Task<int> RunAsync(CliContext context, bool approve, IReadOnlyList<string> images, string? label, bool all, string? data, string? approverName,
        CancellationToken cancellationToken)
    {
        var verb = approve ? "approve" : "reject";
        if ((images.Count > 0 ? 1 : 0) + (label is null ? 0 : 1) + (all ? 1 : 0) != 1)
        {
            throw new UsageException($"say which staged labels to {verb}: image names, --label <label> or --all (one of them).");
        }
        var labels = context.Storage.ReviewLabels();
        var staged = await labels.ListStagedAsync(cancellationToken).ToListAsync(cancellationToken);
        var chosenRecords = staged.Where(s => all || s.Record.Label == label || label is not null && s.Record.Labels?.Contains(label, StringComparer.Ordinal) == true || images.Contains(s.Record.Image, StringComparer.Ordinal)).Select(s => s.Record).ToList();
        var chosen = chosenRecords.Select(r => r.Id).ToList();
        foreach (var image in images.Where(i => !staged.Any(s => s.Record.Image == i)))
        {
            context.Error($"{image}: no label of it is waiting for approval");
        }
        // A rejection needs the training data too: a label someone else approved first is finished as approved.
        var training = ReviewCommands.TrainingFor(context, data, chosenRecords.Select(r => r.Model));
        var approver = await OperatorIdentity.ResolveAsync(context, approverName, "--approver", cancellationToken);
        return await DecideAsync(context, labels, chosen, approve, training, approver, cancellationToken);
    }

    /// <summary>Decides each staged label in <paramref name="ids"/> and prints what happened.</summary>
    public static async Task<int> DecideAsync(CliContext context, ReviewLabels labels, IReadOnlyList<string> ids, bool approve, ReviewTrainingData training, ReviewActor approver,
        CancellationToken cancellationToken)
    {
        var outcomes = new Dictionary<ApprovalOutcome, int>();
        var added = new List<LabelRecord>();
        var destinations = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var id in ids)
        {
            var (outcome, record, _) = await ReviewLabeling.DecideAsync(labels, training, id, approve, approver, DateTimeOffset.UtcNow, cancellationToken);
            outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
            if (outcome == ApprovalOutcome.Added)
            {
                added.Add(record!);
                destinations.Add(training.For(record!.Model).Description);
            }
        }
        var newClasses = added.Where(r => r.NewClass && r.Label is not null).Select(r => r.Label!).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        context.WriteLine(approve
            ? string.Create(CultureInfo.InvariantCulture,
                $"Approved by {approver.Name}: added {added.Count} images to {(destinations.Count == 0 ? training.Default.Description : string.Join(" and ", destinations))} ({ReviewCommands.CountByLabel(added)}{(newClasses.Count > 0 ? $"; new classes: {string.Join(", ", newClasses)}" : "")}); " +
                $"{outcomes.GetValueOrDefault(ApprovalOutcome.AlreadyPresent)} were there already; {outcomes.GetValueOrDefault(ApprovalOutcome.Rejected)} had been rejected by someone else first; " +
                $"{outcomes.GetValueOrDefault(ApprovalOutcome.NotStaged)} were decided meanwhile.")
            : string.Create(CultureInfo.InvariantCulture,
                $"Rejected by {approver.Name}: {outcomes.GetValueOrDefault(ApprovalOutcome.Rejected)} labels (nothing added); {outcomes.GetValueOrDefault(ApprovalOutcome.Added) + outcomes.GetValueOrDefault(ApprovalOutcome.AlreadyPresent)} " +
                $"had been approved by someone else first; {outcomes.GetValueOrDefault(ApprovalOutcome.NotStaged)} were decided meanwhile."));
        return ExitCodes.Ok;
    }
}
