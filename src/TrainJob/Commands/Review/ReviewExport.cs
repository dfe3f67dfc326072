using System.Globalization;
using Azure;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// <c>review export</c>: every queued upload whose image still has the listed version is written to
/// <c>&lt;folder&gt;/&lt;suggested label&gt;/&lt;file&gt;</c> (file: the blob name with '/' as '_', unique in the export)
/// and described in <c>review.csv</c>. Items whose image was deleted or uploaded again since can never be
/// labelled as listed; they are removed from the queue and counted. With a model's name only that model's uploads are
/// exported (its folders are then its classes); without one, every model's, and the summary counts them per model.
/// A multi-label model's uploads go into <c>_multilabel/</c> with a row each in the export's <c>labels.csv</c>
/// (<c>image,labels</c>: the labels its prediction listed, ';' between them), the form <c>train --multilabel</c> reads.
/// </summary>
internal static class ReviewExport
{
    public static async Task<int> RunAsync(CliContext context, string folder, string? model, CancellationToken cancellationToken)
    {
        if (File.Exists(folder) || Directory.Exists(folder) && Directory.EnumerateFileSystemEntries(folder).Any())
        {
            throw new UsageException($"--to {folder} exists and is not an empty folder; export into a new or empty one.");
        }
        var queue = context.Storage.ReviewQueue();
        var images = context.Storage.Container(context.Storage.ImagesContainer);
        var decoder = new ImageDecoder();
        var rows = new List<ReviewCsvRow>();
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var stale = 0;
        var models = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var multiLabel = new List<string[]>();
        var otherModels = 0;
        Directory.CreateDirectory(Path.Combine(folder, ReviewCommands.DiscardFolder));
        await foreach (var (item, etag) in queue.ListAsync(cancellationToken))
        {
            var itemModel = item.Model ?? ModelNames.Default;
            if (model is not null && itemModel != model)
            {
                otherModels++;
                continue;
            }
            ReadOnlyMemory<byte> bytes;
            try
            {
                var blob = images.GetBlobClient(item.Image);
                var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken)).Value;
                if (PredictionBlobs.VersionOf(properties.ETag) != item.ImageVersion)
                {
                    throw new RequestFailedException(412, "replaced since it was listed");
                }
                bytes = await ImageBlobs.ReadAsync(blob, properties.ETag, properties.ContentLength, decoder, cancellationToken);
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                stale += await queue.RemoveAsync(item.Image, etag, cancellationToken) ? 1 : 0;
                continue;
            }
            // A multi-label model's upload is labelled in labels.csv (several labels, or none), so it waits in one folder of its own.
            var label = item.IsMultiLabel ? ReviewCommands.MultiLabelFolder
                : ReviewCommands.FolderLabelProblem(item.SuggestedLabel) is null ? item.SuggestedLabel : ReviewCommands.UnsortedFolder;
            var file = Unique(ReviewLabeling.FileNameFor(item.Image), names);
            var relative = $"{label}/{file}";
            Directory.CreateDirectory(Path.Combine(folder, label));
            await File.WriteAllBytesAsync(Path.Combine(folder, label, file), bytes.ToArray(), cancellationToken);
            models[itemModel] = models.GetValueOrDefault(itemModel) + 1;
            if (item.SuggestedLabels is { } suggested)
            {
                multiLabel.Add([relative, string.Join(DataManifest.MultiLabelSeparator, suggested)]);
            }
            rows.Add(new ReviewCsvRow(relative, item.SuggestedLabel, item.Image, item.ImageVersion, item.ModelVersion, item.Confidence, item.Margin,
                item.OutOfDistribution, string.Join(' ', item.Reasons), item.QueuedUtc));
        }
        ReviewCsv.Write(Path.Combine(folder, ReviewCsv.FileName), rows);
        if (multiLabel.Count > 0)
        {
            ReviewCsv.WriteMultiLabel(Path.Combine(folder, TrainingImages.MultiLabelCsv), multiLabel);
        }
        var byLabel = string.Join(", ", rows.GroupBy(r => r.File.StartsWith(ReviewCommands.MultiLabelFolder + "/", StringComparison.Ordinal) ? ReviewCommands.MultiLabelFolder : r.Label, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Key} {g.Count()}"));
        var empty = model is null ? "the queue is empty" : $"model {model} has nothing queued";
        context.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"Exported {rows.Count} queued images to {folder} ({(rows.Count == 0 ? empty : byLabel)}), with {ReviewCsv.FileName}; " +
            $"{stale} items removed from the queue (the image was deleted or uploaded again since)."));
        if (model is not null)
        {
            context.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Only the uploads of model {model}; {otherModels} of other models were left in the queue."));
        }
        else if (models.Count > 1)
        {
            context.WriteLine($"The export holds several models' uploads ({string.Join(", ", models.Select(m => $"{m.Key} {m.Value}"))}): each image's label goes to its own " +
                "model's training data, but the folders mix their classes; review export --model <name> exports one model at a time.");
        }
        if (multiLabel.Count > 0)
        {
            context.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{multiLabel.Count} uploads of a multi-label model are in {ReviewCommands.MultiLabelFolder}/ and listed in {TrainingImages.MultiLabelCsv} with the labels it suggested: " +
                $"correct each labels cell (';' between labels, empty when the image has none) or move the image to {ReviewCommands.DiscardFolder}/."));
        }
        if (rows.Count > multiLabel.Count)
        {
            context.WriteLine($"Move the wrongly suggested ones into the right label's folder (a new folder is a new label) or into {ReviewCommands.DiscardFolder}/, then: review import {folder}");
        }
        return ExitCodes.Ok;
    }

    private static string Unique(string file, HashSet<string> names)
    {
        var candidate = file;
        for (var n = 2; !names.Add(candidate); n++)
        {
            candidate = $"{Path.GetFileNameWithoutExtension(file)}-{n}{Path.GetExtension(file)}";
        }
        return candidate;
    }
}
