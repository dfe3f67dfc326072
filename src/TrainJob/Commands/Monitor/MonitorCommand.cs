using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Monitor;

/// <summary>
/// <c>monitor [--since 7d] [--html report.html] [--json monitor.json] [--model current]</c>: reads the prediction
/// documents written since then (listed by their blob's last-modified time, read in parallel) and compares them
/// with the reference model's training statistics (<see cref="DriftAnalysis"/>). Prints the verdict line first,
/// then the checks; writes the HTML report (plots) and the JSON beside it.
/// </summary>
public static class MonitorCommand
{
    public static Command Create(GlobalOptions global, CliHost host)
    {
        var since = new Option<string>("--since") { Description = "How far back: a number with d (days) or h (hours), e.g. 7d or 36h.", DefaultValueFactory = _ => "7d", HelpName = "age" };
        var html = new Option<string?>("--html") { Description = "Write the report with its plots to this HTML file (and the JSON beside it, unless --json names another).", HelpName = "file" };
        var json = new Option<string?>("--json") { Description = "Write the report's figures to this JSON file (for automation).", HelpName = "file" };
        var model = new Option<string>("--model") { Description = "The reference model whose training statistics the uploads are compared with: a published version id or current.", DefaultValueFactory = _ => ModelLoader.Current, HelpName = "version" };
        var command = new Command("monitor", "Drift report of the uploads' predictions: volume per day, class mix against the training mix, confidence and " +
            "out-of-distribution scores against validation, unknown and rejected shares, per model version.") { since, html, json, model };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var age = ParseAge(parse.GetRequiredValue(since));
            var until = DateTimeOffset.UtcNow;
            var from = until - age;
            var (manifest, version) = await ReferenceAsync(context, parse.GetRequiredValue(model), cancellationToken);
            var documents = await ReadAsync(context, from, cancellationToken);
            var report = DriftAnalysis.Analyse(documents, manifest, version, from, until);
            context.WriteLine(report.Verdict);
            foreach (var check in report.Checks)
            {
                context.WriteLine($"  {(check.Drifted ? "!" : "-")} {check.Line}");
            }
            context.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{report.Predictions} predictions since {from:yyyy-MM-dd HH:mm} UTC: {report.Ok} ok, {report.Rejected} rejected, {report.Unknown} unknown, " +
                $"{report.OutOfDistribution} of {report.Scored} scored out of distribution; reference model {version ?? "(none published)"}."));
            var htmlPath = parse.GetValue(html);
            var jsonPath = parse.GetValue(json) ?? (htmlPath is null ? null : Path.ChangeExtension(htmlPath, ".json"));
            if (htmlPath is not null)
            {
                await File.WriteAllTextAsync(htmlPath, MonitorHtml.Render(report), cancellationToken);
                context.WriteLine($"Report: {Path.GetFullPath(htmlPath)}");
            }
            if (jsonPath is not null)
            {
                await File.WriteAllTextAsync(jsonPath, JsonSerializer.Serialize(report, ModelManifest.JsonOptions), cancellationToken);
                context.WriteLine($"JSON: {Path.GetFullPath(jsonPath)}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }

    internal static TimeSpan ParseAge(string text)
    {
        var unit = text.Length > 1 ? text[^1] : ' ';
        if (!double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !(value > 0) || unit is not ('d' or 'h'))
        {
            throw new UsageException($"--since {text} is not an age like 7d or 36h.");
        }
        return unit == 'd' ? TimeSpan.FromDays(value) : TimeSpan.FromHours(value);
    }

    private static async Task<(ModelManifest? Manifest, string? Version)> ReferenceAsync(CliContext context, string model, CancellationToken cancellationToken)
    {
        var store = context.Storage.ModelStore();
        var version = model;
        if (string.Equals(model, ModelLoader.Current, StringComparison.OrdinalIgnoreCase))
        {
            if (await store.GetCurrentAsync(cancellationToken) is not { } current)
            {
                return (null, null);
            }
            version = current.State.Version;
        }
        else if (!ModelCore.Storage.ModelStore.IsValidVersion(model))
        {
            throw new UsageException($"--model \"{model}\" is not a version id.");
        }
        var package = await store.LoadAsync(version, roles: [], cancellationToken);
        return (package.Manifest, version);
    }

    private static async Task<List<PredictionDocument>> ReadAsync(CliContext context, DateTimeOffset from, CancellationToken cancellationToken)
    {
        var predictions = context.Storage.Container(context.Storage.PredictionsContainer);
        if (!(await predictions.ExistsAsync(cancellationToken)).Value)
        {
            return [];
        }
        var names = new List<string>();
        await foreach (var blob in predictions.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix: null, cancellationToken))
        {
            if (blob.Name.EndsWith(PredictionDocument.BlobSuffix, StringComparison.Ordinal) && blob.Properties.LastModified >= from)
            {
                names.Add(blob.Name);
            }
        }
        var documents = new PredictionDocument?[names.Count];
        var done = 0;
        await ProgressDisplay.RunAsync(context, async sink =>
        {
            await Parallel.ForEachAsync(Enumerable.Range(0, names.Count), new ParallelOptions { MaxDegreeOfParallelism = 8, CancellationToken = cancellationToken }, async (i, token) =>
        {
            var content = (await predictions.GetBlobClient(names[i]).DownloadContentAsync(token)).Value.Content;
            try
            {
                documents[i] = PredictionDocument.Parse(content.ToMemory().Span);
            }
            catch (JsonException)
            {
                // Not a prediction document: left out.
            }
            sink.Report("predictions", Interlocked.Increment(ref done), names.Count);
        });
            return names.Count;
        });
        return [.. documents.OfType<PredictionDocument>().Where(d => d.ClassifiedUtc >= from)];
    }
}
