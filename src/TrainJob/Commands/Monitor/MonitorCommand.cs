using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Monitor;

/// <summary>
/// <c>monitor [--name model] [--since 7d] [--html report.html] [--json monitor.json] [--model current]</c>: reads the prediction
/// documents of one model (<c>--name</c>; the default model's when omitted) written since then (listed by their blob's
/// last-modified time, read in parallel) and compares them with that model's reference version's training statistics
/// (<see cref="DriftAnalysis"/>). Prints the verdict line first, then the checks, then each version's figures with the
/// review labels' agreement, the current and canary versions side by side during a canary release; writes the HTML
/// report (plots) and the JSON beside it.
/// </summary>
public static class MonitorCommand
{
    public static Command Create(GlobalOptions global, CliHost host)
    {
        var since = new Option<string>("--since") { Description = "How far back: a number with d (days) or h (hours), e.g. 7d or 36h.", DefaultValueFactory = _ => "7d", HelpName = "age" };
        var html = new Option<string?>("--html") { Description = "Write the report with its plots to this HTML file (and the JSON beside it, unless --json names another).", HelpName = "file" };
        var json = new Option<string?>("--json") { Description = "Write the report's figures to this JSON file (for automation).", HelpName = "file" };
        var model = new Option<string>("--model") { Description = "The reference model whose training statistics the uploads are compared with: a published version id or current.", DefaultValueFactory = _ => ModelLoader.Current, HelpName = "version" };
        var name = new Option<string>("--name")
        {
            Description = "Which model's predictions (a named model of the store; the default model's when omitted). Other models' predictions are left out.",
            DefaultValueFactory = _ => ModelNames.Default,
            HelpName = "model",
        };
        var command = new Command("monitor", "Drift report of one model's predictions: volume per day, class mix against the training mix, confidence and " +
            "out-of-distribution scores against validation, unknown and rejected shares, per model version with review-label agreement (current and canary side by side).")
        {
            since, html, json, model, name,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var age = ParseAge(parse.GetRequiredValue(since));
            var until = DateTimeOffset.UtcNow;
            var from = until - age;
            var modelName = parse.GetRequiredValue(name);
            if (ModelNames.Problem(modelName) is { } problem)
            {
                throw new UsageException($"--name: {problem}");
            }
            var store = new ModelStore(context.Storage.Container(context.Storage.ModelsContainer), modelName);
            var (manifest, version, pointer) = await ReferenceAsync(store, parse.GetRequiredValue(model), cancellationToken);
            if (modelName != ModelNames.Default && pointer is null && manifest is null)
            {
                throw new UsageException($"No model named \"{modelName}\" is published (see trainjob models list).");
            }
            // Only this model's predictions: a named model's documents carry "model", the default model's carry none.
            var documents = (await ReadAsync(context, from, cancellationToken)).Where(d => (d.Model ?? ModelNames.Default) == modelName).ToList();
            var labels = await context.Storage.ReviewLabels().ListRecordsAsync(cancellationToken)
                .Concat(context.Storage.ReviewLabels().ListStagedAsync(cancellationToken).Select(s => s.Record))
                .Where(r => (r.Model ?? ModelNames.Default) == modelName).ToListAsync(cancellationToken);
            var report = DriftAnalysis.Analyse(documents, manifest, version, from, until, labels, pointer) with { Model = modelName };
            context.WriteLine(report.Verdict);
            foreach (var check in report.Checks)
            {
                context.WriteLine($"  {(check.Drifted ? "!" : "-")} {check.Line}");
            }
            context.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{report.Predictions} predictions{(modelName == ModelNames.Default ? "" : $" of model {modelName}")} since {from:yyyy-MM-dd HH:mm} UTC: {report.Ok} ok, {report.Rejected} rejected, {report.Unknown} unknown, " +
                $"{report.OutOfDistribution} of {report.Scored} scored out of distribution; reference model {version ?? "(none published)"}."));
            if (report.Canary is { } canary)
            {
                context.WriteLine($"Canary release, {canary.Traffic} % of traffic to {canary.Canary.Version}, side by side with the current version:");
                context.WriteLine($"  current {VersionLine(canary.Current)}");
                context.WriteLine($"  canary  {VersionLine(canary.Canary)}");
            }
            else
            {
                foreach (var v in report.Versions)
                {
                    context.WriteLine($"  version {VersionLine(v)}");
                }
            }
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

    /// <summary>One version's figures on one line (the canary comparison's and the per-version list's).</summary>
    internal static string VersionLine(VersionSummary v) => string.Create(CultureInfo.InvariantCulture,
        $"{v.Version}: {v.Predictions} predictions, median confidence {(double.IsNaN(v.MedianConfidence) ? "-" : v.MedianConfidence.ToString("0.00", CultureInfo.InvariantCulture))}, " +
        $"unknown {v.UnknownShare * 100:0.#} %, out of distribution {v.OutOfDistributionShare * 100:0.#} %, rejected {v.RejectedShare * 100:0.#} %, " +
        $"review labels agree {(v.ReviewAgreement is { } a ? $"{Math.Round(a * v.Reviewed)} of {v.Reviewed} ({a * 100:0} %)" : "- (none reviewed)")}");

    internal static TimeSpan ParseAge(string text)
    {
        var unit = text.Length > 1 ? text[^1] : ' ';
        if (!double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || !(value > 0) || unit is not ('d' or 'h'))
        {
            throw new UsageException($"--since {text} is not an age like 7d or 36h.");
        }
        return unit == 'd' ? TimeSpan.FromDays(value) : TimeSpan.FromHours(value);
    }

    private static async Task<(ModelManifest? Manifest, string? Version, CurrentModelPointer? Pointer)> ReferenceAsync(ModelStore store, string model, CancellationToken cancellationToken)
    {
        var current = await store.GetCurrentAsync(cancellationToken);
        var version = model;
        if (string.Equals(model, ModelLoader.Current, StringComparison.OrdinalIgnoreCase))
        {
            if (current is null)
            {
                return (null, null, null);
            }
            version = current.State.Version;
        }
        else if (!ModelStore.IsValidVersion(model))
        {
            throw new UsageException($"--model \"{model}\" is not a version id.");
        }
        var package = await store.LoadAsync(version, roles: [], cancellationToken);
        return (package.Manifest, version, current?.State);
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
