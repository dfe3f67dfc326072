using System.CommandLine;
using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;
using Spectre.Console;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary><c>publish</c> and <c>models list|show|promote|rollback</c>: the blob model store, one named model at a time.</summary>
public static class ModelCommands
{
    public static Command CreatePublish(GlobalOptions global, CliHost host)
    {
        var model = new Option<string>("--model") { Description = "The model folder to publish (with manifest.json; e.g. a train --output folder).", Required = true, HelpName = "folder" };
        // publish's --model has always named the folder, so the model's name is --name here (--model <name> in models ...).
        var name = NameOption("--name");
        var command = new Command("publish", "Upload a model folder as a new immutable version of a named model and make it the current (served) one. Prints the version id.") { model, name };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = parse.GetRequiredValue(model);
            if (!Directory.Exists(folder))
            {
                throw new UsageException($"--model {folder} is not a folder.");
            }
            var store = Store(context, parse.GetRequiredValue(name), "--name");
            var version = await store.PublishAsync(folder, cancellationToken: cancellationToken);
            context.WriteLine(version);
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command CreateModels(GlobalOptions global, CliHost host)
    {
        var listName = NameOption("--model");
        var list = new Command("list", "List a model's published versions, newest first; the current one is marked. A version whose manifest cannot be read is listed with the problem (exit code 0). Other models in the store are named below the table.") { listName };
        CliApp.Handle(list, global, host, async (parse, context, cancellationToken) =>
        {
            var store = Store(context, parse.GetRequiredValue(listName), "--model");
            var models = await store.ListAsync(cancellationToken);
            var canaryRelease = (await store.GetCurrentAsync(cancellationToken))?.State.Canary;
            var others = (await ModelCore.Storage.ModelStore.ListModelsAsync(store.Container, cancellationToken)).Where(n => n != store.Model).ToList();
            if (models.Count == 0)
            {
                context.WriteLine(store.Model == ModelNames.Default
                    ? $"No model has been published to the '{context.Storage.ModelsContainer}' container."
                    : $"No version of model {store.Model} has been published to the '{context.Storage.ModelsContainer}' container.");
                WriteOthers(context, others);
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("current", "version", "created (UTC)", "backbone", "precision", "classes", "accuracy", "problems");
            foreach (var m in models)
            {
                var manifest = m.Manifest;
                table.AddRow(
                    Text(m.IsCurrent ? "*" : canaryRelease?.Version == m.Version ? $"{canaryRelease.Traffic}%" : ""),
                    Text(m.Version),
                    Text(manifest?.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-"),
                    Text(manifest?.Backbone ?? "-"),
                    Text(manifest?.Precision.ToString().ToLowerInvariant() ?? "-"),
                    Text(manifest is null ? "-" : Classes(manifest)),
                    Text(manifest?.Metrics?.Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "-"),
                    Text(context.Mask(m.Problem ?? "")));
            }
            context.Console.Write(table);
            WriteOthers(context, others);
            return ExitCodes.Ok;
        });

        var version = new Argument<string>("version") { Description = "The version id to make current (see models list)." };
        var promoteName = NameOption("--model");
        var traffic = new Option<int>("--traffic")
        {
            Description = "The percentage of images the version serves (1-100): below 100 it is a canary beside the current version (each image chosen by a stable hash of its name, or of an HTTP image's bytes); 100 makes it current.",
            DefaultValueFactory = _ => 100,
            HelpName = "percent",
        };
        var promote = new Command("promote", "Make an existing version the current one (also a rollback), or with --traffic below 100 a canary that serves that share. The version is verified first.") { version, promoteName, traffic };
        CliApp.Handle(promote, global, host, async (parse, context, cancellationToken) =>
        {
            var id = parse.GetRequiredValue(version);
            if (!ModelCore.Storage.ModelStore.IsValidVersion(id))
            {
                throw new UsageException($"\"{id}\" is not a version id.");
            }
            var store = Store(context, parse.GetRequiredValue(promoteName), "--model");
            var share = parse.GetValue(traffic);
            if (share is < 1 or > 100)
            {
                throw new UsageException($"--traffic {share} is not a percentage from 1 to 100.");
            }
            try
            {
                var pointer = await store.PromoteAsync(id, share, cancellationToken);
                context.WriteLine(pointer.Canary is { } canary
                    ? $"Canary: {Describe(store, canary.Version)} serves {canary.Traffic} % of the images; {pointer.Version} the rest (models promote {canary.Version} --traffic 100 completes it, models rollback ends it)."
                    : $"Current model: {Describe(store, pointer.Version)}{(pointer.Previous is { } previous ? $" (was {previous})" : "")}");
            }
            catch (FileNotFoundException e)
            {
                throw new InvalidOperationException($"Version {id} is not in the '{context.Storage.ModelsContainer}' container or is incomplete ({e.Message}).", e);
            }
            return ExitCodes.Ok;
        });

        var rollbackName = NameOption("--model");
        var rollback = new Command("rollback", "End a canary release (the current version serves everything again), or without one make the version that was current before the current one current again (verified first).") { rollbackName };
        CliApp.Handle(rollback, global, host, async (parse, context, cancellationToken) =>
        {
            var store = Store(context, parse.GetRequiredValue(rollbackName), "--model");
            try
            {
                var before = (await store.GetCurrentAsync(cancellationToken))?.State.Canary;
                var pointer = await store.RollbackAsync(cancellationToken);
                context.WriteLine(before is not null
                    ? $"Current model: {Describe(store, pointer.Version)} serves all images again (the canary {before.Version} ended)."
                    : $"Current model: {Describe(store, pointer.Version)} (was {pointer.Previous})");
            }
            catch (FileNotFoundException e)
            {
                throw new InvalidOperationException($"The previous version of model {store.Model} is no longer complete in the '{context.Storage.ModelsContainer}' container ({e.Message}).", e);
            }
            return ExitCodes.Ok;
        });

        var showVersion = new Argument<string>("version") { Description = "The version id to show, or current.", DefaultValueFactory = _ => ModelLoader.Current };
        var showName = NameOption("--model");
        var show = new Command("show", "Show one version of a model (default: the current one): its labels, backbone, metrics and files.") { showVersion, showName };
        CliApp.Handle(show, global, host, async (parse, context, cancellationToken) =>
        {
            var store = Store(context, parse.GetRequiredValue(showName), "--model");
            var id = parse.GetRequiredValue(showVersion);
            var current = await store.GetCurrentAsync(cancellationToken);
            if (string.Equals(id, ModelLoader.Current, StringComparison.OrdinalIgnoreCase))
            {
                id = current?.State.Version
                    ?? throw new InvalidOperationException($"Model {store.Model} has no current version in the '{context.Storage.ModelsContainer}' container.");
            }
            else if (!ModelCore.Storage.ModelStore.IsValidVersion(id))
            {
                throw new UsageException($"\"{id}\" is not a version id.");
            }
            var entry = (await store.ListAsync(cancellationToken)).FirstOrDefault(m => m.Version == id)
                ?? throw new InvalidOperationException($"Version {id} of model {store.Model} is not in the '{context.Storage.ModelsContainer}' container.");
            context.WriteLine($"model:      {store.Model}");
            context.WriteLine($"version:    {entry.Version}{(entry.IsCurrent ? " (current)" : current?.State.Canary?.Version == entry.Version ? $" (canary: {current.State.Canary.Traffic} % of the images)" : "")}");
            if (entry.Manifest is not { } manifest)
            {
                context.WriteLine($"problem:    {context.Mask(entry.Problem ?? "unreadable")}");
                return ExitCodes.Ok;
            }
            context.WriteLine($"created:    {manifest.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)} UTC");
            context.WriteLine($"backbone:   {manifest.Backbone} ({manifest.Precision.ToString().ToLowerInvariant()})");
            context.WriteLine($"labels:     {manifest.Labels.Count}: {string.Join(", ", manifest.Labels)}");
            context.WriteLine($"accuracy:   {(manifest.Metrics?.Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "-")}");
            context.WriteLine($"threshold:  {manifest.ConfidenceThreshold.ToString(CultureInfo.InvariantCulture)}");
            if (manifest.ClassThresholds is { } own)
            {
                context.WriteLine($"per class:  {own.Goal}: {(own.Thresholds.Count == 0 ? "none" : string.Join(", ", own.Thresholds.Select(t => string.Create(CultureInfo.InvariantCulture, $"{t.Key} {t.Value}"))))}");
            }
            foreach (var file in manifest.Files)
            {
                context.WriteLine($"file:       {file.Name} ({file.Bytes.ToString(CultureInfo.InvariantCulture)} bytes, sha256 {file.Sha256})");
            }
            return ExitCodes.Ok;
        });

        return new Command("models", "Inspect the model store and choose each model's served version.") { list, show, promote, rollback };
    }

    private static Option<string> NameOption(string name) => new(name)
    {
        Description = $"The model's name in the store (lowercase letters, digits and '-', starting with a letter; at most {ModelNames.MaxLength}).",
        DefaultValueFactory = _ => ModelNames.Default,
        HelpName = "name",
    };

    private static ModelCore.Storage.ModelStore Store(CliContext context, string name, string option) =>
        ModelNames.Problem(name) is { } problem
            ? throw new UsageException($"{option}: {problem}")
            : context.Storage.ModelStore(name);

    private static string Describe(ModelCore.Storage.ModelStore store, string version) =>
        store.Model == ModelNames.Default ? version : $"{store.Model} {version}";

    private static void WriteOthers(CliContext context, List<string> others)
    {
        if (others.Count > 0)
        {
            context.WriteLine($"Other models in this store: {string.Join(", ", others)} (models list --model <name>).");
        }
    }

    private static string Classes(ModelManifest manifest)
    {
        var labels = string.Join(", ", manifest.Labels.Take(5));
        return $"{manifest.Labels.Count} ({labels}{(manifest.Labels.Count > 5 ? ", ..." : "")})";
    }

    /// <summary>A cell as literal text: labels and messages come from users and must not be read as Spectre markup.</summary>
    private static Text Text(string value) => new(value);
}
