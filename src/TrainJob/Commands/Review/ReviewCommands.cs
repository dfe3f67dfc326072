using System.CommandLine;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review export --to &lt;folder&gt;</c> and <c>review import &lt;folder&gt;</c>: the review queue that the Functions
/// app (and <c>classify --container</c>) fills with uncertain uploads, out to a folder a person sorts and back into
/// the training data.
/// </summary>
public static class ReviewCommands
{
    /// <summary>The export's folder for images a person decides not to train on: import removes them from the queue only.</summary>
    public const string DiscardFolder = "_discard";

    /// <summary>The export's folder for images whose suggested label cannot be a folder name.</summary>
    public const string UnsortedFolder = "_unsorted";

    /// <summary>
    /// Null when an export folder's name can be a label: the training data's rule (<see cref="TrainingLayout.LabelProblem"/>),
    /// and no leading '_', which the export keeps for its own folders (<see cref="DiscardFolder"/>, <see cref="UnsortedFolder"/>).
    /// </summary>
    internal static string? FolderLabelProblem(string label) =>
        label.StartsWith('_') ? $"starts with '_', which the export keeps for its own folders ({DiscardFolder}, {UnsortedFolder})" : TrainingLayout.LabelProblem(label);

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var to = new Option<string>("--to") { Description = "A new or empty folder to write the queued images into, one subfolder per suggested label, with review.csv.", Required = true, HelpName = "folder" };
        var export = new Command("export", "Write the queued uploads into an ImageFolder layout grouped by the model's suggested label, with review.csv of their scores. " +
            "Move the wrong ones into the right label's folder (a new folder is a new label) or into _discard/, then run review import.") { to };
        CliApp.Handle(export, global, host, (parse, context, cancellationToken) => ReviewExport.RunAsync(context, parse.GetRequiredValue(to), cancellationToken));

        var folder = new Argument<string>("folder") { Description = "A folder written by review export, after sorting." };
        var data = new Option<string?>("--data")
        {
            Description = "Where the training data is: an existing local folder, or container[/prefix] in the configured storage (default: the training container).",
            HelpName = "folder | container[/prefix]",
        };
        var import = new Command("import", "Add the sorted images to the training data (never overwriting an image there) and remove them from the review queue; " +
            "images in _discard/ are only removed from the queue.") { folder, data };
        CliApp.Handle(import, global, host, (parse, context, cancellationToken) =>
            ReviewImport.RunAsync(context, parse.GetRequiredValue(folder), parse.GetValue(data), cancellationToken));

        return new Command("review", "The review queue: uploads the model was unsure about (unknown, low margin, out of distribution), to label and train on.") { export, import };
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
