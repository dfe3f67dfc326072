using System.CommandLine;
using System.Globalization;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;
using Spectre.Console;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// <c>classify</c>: local files and folders (a table, or one JSON prediction per line), or with
/// <c>--container</c> a backfill that writes <c>predictions/&lt;name&gt;.json</c> for every image blob
/// that has none or an outdated one, offering uncertain ones to the review queue as the Functions app does; with
/// <c>--distributed</c> the same work cut into shards for the Functions app (<see cref="JobCommands"/>). Exit code 3 when some local inputs were rejected.
/// </summary>
public static class ClassifyCommand
{
    public static Command Create(GlobalOptions global, CliHost host)
    {
        var inputs = new Argument<string[]>("inputs") { Description = "Image files and folders (folders are searched recursively for image files).", Arity = ArgumentArity.ZeroOrMore };
        var model = new Option<string>("--model") { Description = "A model folder, or a published version id (current = the live one).", DefaultValueFactory = _ => ModelLoader.Current, HelpName = "folder | version" };
        var top = new Option<int>("--top") { Description = "How many labels to show per image.", DefaultValueFactory = _ => 3 };
        top.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--top must be >= 1."); } });
        var json = new Option<bool>("--json") { Description = "Print one JSON prediction document per line instead of a table." };
        var container = new Option<string?>("--container")
        {
            Description = "Backfill: classify every blob in this container (default: the images container) that has no prediction yet, " +
                "writing predictions/<name>.json as the Functions app does. Existing predictions are never replaced. With --model current (the default) " +
                "each image gets the model and version the app would give it (a named model's folder, a canary's share).",
            Arity = ArgumentArity.ZeroOrOne,
            HelpName = "name",
        };
        var distributed = new Option<bool>("--distributed")
        {
            Description = "With --container: list the container once and queue shards of its work for the Functions app's ClassifyShard " +
                "function, which scales out on the queue and classifies with the live model; prints the job id (see jobs status).",
        };
        var shardSize = new Option<int>("--shard-size") { Description = "With --distributed: most images per shard (one queue message).", DefaultValueFactory = _ => ShardPlanner.DefaultShardSize };
        shardSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 5000) { r.AddError("--shard-size must be between 1 and 5000."); } });
        var wait = new Option<bool>("--wait") { Description = "With --distributed: follow the job until every shard is done or parked (exit code 1 when one is parked)." };
        var batchSize = new Option<int>("--batch-size") { Description = "Images per inference call.", DefaultValueFactory = _ => 16 };
        batchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        var explain = new Option<string?>("--explain")
        {
            Description = "Write each local image's activation map (where the model looked for its most probable class) over the model's view of it, " +
                "as <name>.explain.png in this folder; with --json the document also carries the map as a grid. ResNet and DenseNet models.",
            HelpName = "folder",
        };
        var command = new Command("classify", "Classify local images with the serving (ONNX) pipeline, or backfill predictions for a blob container.")
        {
            inputs, model, top, json, container, distributed, shardSize, wait, batchSize, explain,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var paths = parse.GetValue(inputs) ?? [];
            var backfill = parse.GetResult(container) is not null;
            if (backfill && paths.Length > 0)
            {
                throw new UsageException("pass either files/folders or --container, not both.");
            }
            if (!backfill && paths.Length == 0)
            {
                throw new UsageException("nothing to classify: pass image files or folders, or --container to backfill a blob container.");
            }
            if (parse.GetValue(distributed))
            {
                if (!backfill)
                {
                    throw new UsageException("--distributed needs --container: it fans out a container's backfill.");
                }
                if (parse.GetValue(model) != ModelLoader.Current)
                {
                    throw new UsageException("--distributed classifies with the Functions app's live model; --model cannot choose another (publish or promote it first).");
                }
                return await JobCommands.StartAsync(context, parse.GetValue(container) ?? context.Storage.ImagesContainer, parse.GetValue(shardSize), parse.GetValue(wait), cancellationToken);
            }
            if (parse.GetResult(shardSize) is { Implicit: false } || parse.GetValue(wait))
            {
                throw new UsageException("--shard-size and --wait go with --distributed.");
            }
            var explainFolder = parse.GetValue(explain);
            if (explainFolder is not null && backfill)
            {
                throw new UsageException("--explain goes with local images, not --container.");
            }
            var modelSpec = parse.GetRequiredValue(model);
            if (backfill && string.Equals(modelSpec, ModelLoader.Current, StringComparison.OrdinalIgnoreCase))
            {
                using var router = await LiveModelRouter.CreateAsync(context, cancellationToken);
                return await BackfillWithLiveModelsAsync(context, router, parse.GetValue(container) ?? context.Storage.ImagesContainer, cancellationToken);
            }
            var loaded = await ModelLoader.LoadAsync(modelSpec, context, cancellationToken);
            using var pipeline = ModelLoader.CreatePipeline(loaded, context);
            if (explainFolder is not null && pipeline.ActivationMapUnavailable is { } why)
            {
                throw new UsageException($"--explain: {why}");
            }
            return backfill
                ? await BackfillAsync(context, pipeline, loaded, parse.GetValue(container) ?? context.Storage.ImagesContainer, cancellationToken)
                : await ClassifyLocalAsync(context, pipeline, loaded, paths, parse.GetValue(top), parse.GetValue(json), parse.GetValue(batchSize), explainFolder, cancellationToken);
        });
        return command;
    }

    private static async Task<int> ClassifyLocalAsync(CliContext context, ClassificationPipeline pipeline, LoadedModel model, string[] paths, int top, bool json, int batchSize, string? explainFolder,
        CancellationToken cancellationToken)
    {
        var files = paths.SelectMany(p => Directory.Exists(p) ? ImageFiles.InFolder(p) : [p]).ToList();
        var table = new Table().AddColumns("file", "label", "confidence", $"top {top}", "error");
        var rejected = 0;
        var maps = new Dictionary<string, ActivationMap>(StringComparer.Ordinal);
        var written = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        Action<string, ActivationMap?, PreparedImage>? onMap = null;
        if (explainFolder is not null)
        {
            Directory.CreateDirectory(explainFolder);
            onMap = (file, map, image) =>
            {
                if (map is null)
                {
                    return;
                }
                maps[file] = map;
                // <name>.explain.png; a second image of the same name (from another folder) gets -2, -3, ...
                var stem = Path.GetFileNameWithoutExtension(file);
                var name = $"{stem}.explain.png";
                for (var n = 2; !written.Add(name); n++)
                {
                    name = string.Create(CultureInfo.InvariantCulture, $"{stem}-{n}.explain.png");
                }
                File.WriteAllBytes(Path.Combine(explainFolder, name), pipeline.RenderOverlayPng(map, image));
            };
        }
        await ImageFiles.ClassifyAsync(pipeline, [.. files.Select(ImageInput.FromFile)], batchSize, top, outcome =>
        {
            if (!outcome.Ok)
            {
                rejected++;
            }
            if (json)
            {
                var document = outcome.Classification is { } c
                    ? PredictionDocument.FromClassification(outcome.File, c, model.Version, source: null) with
                    {
                        Explanation = maps.TryGetValue(outcome.File, out var map) ? new ExplanationDocument { Label = map.Label, Grid = map.Rows() } : null,
                    }
                    : new PredictionDocument
                    {
                        Status = PredictionStatus.Rejected,
                        Image = outcome.File,
                        ModelVersion = model.Version,
                        Error = new PredictionError(outcome.ErrorCode!, outcome.ErrorMessage!),
                    };
                context.Out.WriteLine(document.ToJson());
            }
            else if (outcome.Classification is { } c)
            {
                table.AddRow(new Text(outcome.File), new Text(c.Label), new Text(c.Confidence.ToString("0.000", CultureInfo.InvariantCulture)),
                    new Text(string.Join(", ", c.Top.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Label} {t.Probability:0.000}")))), new Text(""));
            }
            else
            {
                table.AddRow(new Text(outcome.File), new Text("-"), new Text("-"), new Text("-"), new Text($"{outcome.ErrorCode}: {outcome.ErrorMessage}"));
            }
        }, cancellationToken, onMap);
        if (!json)
        {
            context.Console.Write(table);
        }
        if (explainFolder is not null)
        {
            context.Error($"Wrote {written.Count} activation map overlays to {explainFolder}.");
        }
        if (rejected > 0)
        {
            context.Error($"{rejected} of {files.Count} inputs could not be classified (see the error column / status \"rejected\").");
            return ExitCodes.SomeInputsRejected;
        }
        return ExitCodes.Ok;
    }

    /// <summary>
    /// The backfill is ModelCore's <see cref="PredictionBackfill"/> with <see cref="PredictionUpdater"/>'s rule, the code
    /// the Functions app's sweep runs: images without a prediction, or whose prediction describes an older version of
    /// the image, are classified; predictions whose image is gone are removed; current predictions are left alone.
    /// With one given model (a folder or a version of the default model), images whose first path segment names another
    /// model of the store are that model's (README "Several models"): left to the app, never classified here with this one.
    /// </summary>
    private static async Task<int> BackfillAsync(CliContext context, ClassificationPipeline pipeline, LoadedModel model, string imagesName, CancellationToken cancellationToken)
    {
        var classifier = new PredictionClassifier(model.Version, pipeline.Decoder, (bytes, _) => Task.FromResult(pipeline.Classify(bytes)));
        var named = (await ModelStore.ListModelsAsync(context.Storage.Container(context.Storage.ModelsContainer), cancellationToken))
            .Where(n => n != ModelNames.Default).ToHashSet(StringComparer.Ordinal);
        var (report, failed) = await RunBackfillAsync(context, imagesName, (_, _) => Task.FromResult(classifier),
            named.Count == 0 ? null : name => name.IndexOf('/', StringComparison.Ordinal) is > 0 and var slash && named.Contains(name[..slash]),
            written: null, cancellationToken);
        context.WriteLine($"Wrote {report.Classified + report.Rejected} predictions to '{context.Storage.PredictionsContainer}' ({report.Classified} ok, " +
            $"{report.Rejected} rejected) with {model.Description}; {report.Removed} predictions of deleted images removed; " +
            $"{report.AlreadyDone} were current already.");
        if (report.PassedOver > 0)
        {
            context.WriteLine($"{report.PassedOver} images under a named model's folder ({string.Join(", ", named.Order(StringComparer.Ordinal))}) were left to that model " +
                "(the Functions app classifies them; or run this backfill with --model current, which classifies each image with its live model).");
        }
        return failed;
    }

    /// <summary>
    /// The backfill with the live models (<c>--model current</c>): each image is classified by the model and version the
    /// app's blob trigger would choose (<see cref="LiveModelRouter"/>), so named models' images and a canary's share get
    /// theirs, and every prediction names its model and version.
    /// </summary>
    private static async Task<int> BackfillWithLiveModelsAsync(CliContext context, LiveModelRouter router, string imagesName, CancellationToken cancellationToken)
    {
        var (report, failed) = await RunBackfillAsync(context, imagesName, router.ClassifierForAsync, router.HasNoModel, router.CountWritten, cancellationToken);
        context.WriteLine($"Wrote {report.Classified + report.Rejected} predictions to '{context.Storage.PredictionsContainer}' ({report.Classified} ok, " +
            $"{report.Rejected} rejected) with the live models: {router.Summary()}; {report.Removed} predictions of deleted images removed; " +
            $"{report.AlreadyDone} were current already.");
        if (report.PassedOver > 0)
        {
            context.WriteLine($"{report.PassedOver} images were left unclassified: they belong to the default model, which has no published version.");
        }
        return failed;
    }

    private static async Task<(BackfillReport Report, int ExitCode)> RunBackfillAsync(CliContext context, string imagesName,
        Func<string, CancellationToken, Task<PredictionClassifier>> classifierFor, Func<string, bool>? passOver, Action<string>? written, CancellationToken cancellationToken)
    {
        var images = context.Storage.Container(imagesName);
        if (!(await images.ExistsAsync(cancellationToken)).Value)
        {
            throw new InvalidOperationException($"There is no container '{imagesName}' in the configured storage.");
        }
        var predictions = context.Storage.Container(context.Storage.PredictionsContainer);
        await predictions.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        var review = context.Storage.ReviewQueue();
        var failures = new List<string>();
        var report = await ProgressDisplay.RunAsync(context, sink =>
        {
            var done = 0;
            return new PredictionBackfill(images, predictions).RunAsync(
                async (name, token) => await PredictionUpdater.UpdateAsync(images.GetBlobClient(name), name, predictions, await classifierFor(name, token), PredictionSource.Backfill, review, token),
                failed: (name, error) => failures.Add($"{name}: {error.Message}"),
                done: (name, outcome) =>
                {
                    if (outcome is PredictionOutcome.Classified or PredictionOutcome.Rejected)
                    {
                        written?.Invoke(name);
                    }
                    sink.Report("backfill", ++done, done);
                },
                passOver: passOver,
                cancellationToken: cancellationToken);
        });
        if (report.FirstNameTooLong is { } first)
        {
            context.Error($"{report.NamesTooLong} images have names too long for a prediction (over {PredictionDocument.MaxImageNameLength} characters; the first is {first}): they were not classified; rename them.");
        }
        foreach (var failure in failures)
        {
            context.Error(failure);
        }
        return (report, failures.Count == 0 ? ExitCodes.Ok : ExitCodes.Failure);
    }
}
