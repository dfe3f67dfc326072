using System.CommandLine;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review export --to &lt;folder&gt;</c>, <c>review import &lt;folder&gt;</c>, <c>review approve|reject</c>: the review queue
/// that the Functions app (and <c>classify --container</c>) fills with uncertain uploads, out to a folder a person sorts,
/// back as staged labels, and, once approved, into the training data.
/// </summary>
public static class ReviewCommands
{
    /// <summary>The export's folder for images a person decides not to train on: import removes them from the queue only.</summary>
    public const string DiscardFolder = "_discard";

    /// <summary>The export's folder for images whose suggested label cannot be a folder name.</summary>
    public const string UnsortedFolder = "_unsorted";

    /// <summary>
    /// The export's folder for a multi-label model's uploads: they are labelled by the export's <see cref="TrainingImages.MultiLabelCsv"/>
    /// (<c>image,labels</c>, ';' between labels, empty for none: the layout <c>train --multilabel</c> reads), not by folder.
    /// </summary>
    public const string MultiLabelFolder = "_multilabel";

    /// <summary>
    /// Null when an export folder's name can be a label: the training data's rule (<see cref="TrainingLayout.LabelProblem"/>),
    /// and no leading '_', which the export keeps for its own folders (<see cref="DiscardFolder"/>, <see cref="UnsortedFolder"/>).
    /// </summary>
    internal static string? FolderLabelProblem(string label) =>
        label.StartsWith('_') ? $"starts with '_', which the export keeps for its own folders ({DiscardFolder}, {UnsortedFolder}, {MultiLabelFolder})" : TrainingLayout.LabelProblem(label);

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var to = new Option<string>("--to") { Description = "A new or empty folder to write the queued images into, one subfolder per suggested label, with review.csv.", Required = true, HelpName = "folder" };
        var export = new Command("export", "Write the queued uploads into an ImageFolder layout grouped by the model's suggested label, with review.csv of their scores. " +
            "Move the wrong ones into the right label's folder (a new folder is a new label) or into _discard/, then run review import. " +
            "A multi-label model's uploads go into _multilabel/ with labels.csv (image,labels; ';' between labels, empty for none): correct the labels cell.") { to };
        var model = new Option<string?>("--model")
        {
            Description = "Export only this model's uploads (default: every model's; \"default\" is the default model), so the folders hold one model's classes.",
            HelpName = "name",
        };
        model.Validators.Add(r => { if (r.GetValueOrDefault<string?>() is { } name && ModelNames.Problem(name) is { } problem) { r.AddError($"--model: {problem}"); } });
        export.Options.Add(model);
        CliApp.Handle(export, global, host, (parse, context, cancellationToken) => ReviewExport.RunAsync(context, parse.GetRequiredValue(to), parse.GetValue(model), cancellationToken));

        var folder = new Argument<string>("folder") { Description = "A folder written by review export, after sorting." };
        var data = DataOption("Where approved images go (with --approve): an existing local folder, or container[/prefix] in the configured storage (default: the training container).");
        var reviewer = new Option<string?>("--reviewer")
        {
            Description = "Your name for the label records, when storage is reached with a connection string (with identity-based storage your Azure sign-in is recorded).",
            HelpName = "name",
        };
        var approveNow = new Option<bool>("--approve") { Description = "Approve the labels you stage at once (you are the Approver): the images go into the training data." };
        var import = new Command("import", "Label the sorted images by their folder: each leaves the review queue and is staged with a record of who labelled it (who, when, " +
            "image version, suggestion); nothing reaches the training data until it is approved (review approve, or --approve). Images in _discard/ only leave the queue.")
        {
            folder, data, reviewer, approveNow,
        };
        CliApp.Handle(import, global, host, (parse, context, cancellationToken) =>
            ReviewImport.RunAsync(context, parse.GetRequiredValue(folder), parse.GetValue(reviewer), parse.GetValue(approveNow), parse.GetValue(data), cancellationToken));

        return new Command("review", "The review queue: uploads the model was unsure about (unknown, low margin, out of distribution), to label and train on.")
        {
            export, import, Decide(global, host, approve: true), Decide(global, host, approve: false),
        };
    }

    /// <summary><c>review approve</c> or <c>review reject</c>: staged labels chosen by image name, label or all.</summary>
    private static Command Decide(GlobalOptions global, CliHost host, bool approve)
    {
        var images = new Argument<string[]>("images") { Description = "Image names (as queued) whose staged labels to decide.", Arity = ArgumentArity.ZeroOrMore };
        var label = new Option<string?>("--label") { Description = "Every staged label with this label.", HelpName = "label" };
        var all = new Option<bool>("--all") { Description = "Every staged label." };
        var data = DataOption("Where approved images go: an existing local folder, or container[/prefix] in the configured storage (default: the training container).");
        var approver = new Option<string?>("--approver")
        {
            Description = "Your name for the records, when storage is reached with a connection string (with identity-based storage your Azure sign-in is recorded).",
            HelpName = "name",
        };
        var command = approve
            ? new Command("approve", "Approve staged labels: each image is added to the training data under its label (never overwriting), and the decision is recorded with who made it.")
            : new Command("reject", "Reject staged labels: nothing is added; the decision is recorded with who made it.");
        command.Add(images);
        command.Add(label);
        command.Add(all);
        command.Add(data);
        command.Add(approver);
        CliApp.Handle(command, global, host, (parse, context, cancellationToken) =>
            ReviewApprove.RunAsync(context, approve, parse.GetValue(images) ?? [], parse.GetValue(label), parse.GetValue(all), parse.GetValue(data), parse.GetValue(approver), cancellationToken));
        return command;
    }

    private static Option<string?> DataOption(string description) => new("--data") { Description = description, HelpName = "folder | container[/prefix]" };

    /// <summary>A model's live classes (the current published version's labels; null: the default model); none when nothing is published.</summary>
    internal static async Task<IReadOnlySet<string>> LiveClassesAsync(CliContext context, string? model, CancellationToken cancellationToken)
    {
        var store = new ModelStore(context.Storage.Container(context.Storage.ModelsContainer), model ?? ModelNames.Default);
        if (await store.GetCurrentAsync(cancellationToken) is not { } current)
        {
            return new HashSet<string>();
        }
        var path = $"{ModelNames.Prefix(store.Model)}{current.State.Version}/{ModelManifest.FileName}";
        var manifest = await store.Container.GetBlobClient(path).DownloadContentAsync(cancellationToken);
        return ModelManifest.Parse(manifest.Value.Content.ToMemory().Span, path).Labels.ToHashSet(StringComparer.Ordinal);
    }

    /// <summary>
    /// Where approved labels go, each to its own model's training data (<see cref="ReviewTrainingData"/>). <c>--data</c> replaces
    /// the default model's only, so it is refused when a named model is among <paramref name="models"/> (the chosen labels'):
    /// its images would land in training data that is not that model's.
    /// </summary>
    internal static ReviewTrainingData TrainingFor(CliContext context, string? data, IEnumerable<string?> models)
    {
        var named = models.OfType<string>().Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (data is not null && named.Count > 0)
        {
            throw new UsageException($"--data names the default model's training data, and labels of named models ({string.Join(", ", named)}) are among those chosen: " +
                $"they go to {context.Storage.NamedTrainingContainer}/<model>. Decide them without --data, or choose only the default model's labels.");
        }
        return new ReviewTrainingData(Training(context, data), context.Storage.Container(context.Storage.NamedTrainingContainer));
    }

    /// <summary>"label count, ..." in label order, or "none".</summary>
    internal static string CountByLabel(IEnumerable<LabelRecord> records)
    {
        var byLabel = records.GroupBy(r => r.Labels is { Count: 0 } ? "(no label)" : r.LabelText!, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}").ToList();
        return byLabel.Count == 0 ? "none" : string.Join(", ", byLabel);
    }

    /// <summary>The training data <c>--data</c> names: an existing folder, else <c>container[/prefix]</c> (default: the training container).</summary>
    internal static TrainingImages Training(CliContext context, string? data)
    {
        if (data is null)
        {
            return TrainingImages.Blobs(context.Storage.Container(context.Storage.TrainingContainer), "");
        }
        if (Directory.Exists(data))
        {
            return TrainingImages.Local(data);
        }
        var slash = data.IndexOf('/', StringComparison.Ordinal);
        var container = slash < 0 ? data : data[..slash];
        if (ContainerNames.Problem(container) is { } problem)
        {
            throw new UsageException($"--data {data} is neither an existing folder nor container[/prefix]: {problem}.");
        }
        return TrainingImages.Blobs(context.Storage.Container(container), slash < 0 ? "" : data[(slash + 1)..]);
    }
}
