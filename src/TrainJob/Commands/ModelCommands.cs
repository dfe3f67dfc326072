using System.CommandLine;
using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.TrainJob.Cli;
using Spectre.Console;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary><c>publish</c>, <c>models list</c> and <c>models promote</c>: the blob model store.</summary>
public static class ModelCommands
{
    public static Command CreatePublish(GlobalOptions global, CliHost host)
    {
        var model = new Option<string>("--model") { Description = "The model folder to publish (with manifest.json; e.g. a train --output folder).", Required = true, HelpName = "folder" };
        var command = new Command("publish", "Upload a model folder as a new immutable version and make it the current (served) one. Prints the version id.") { model };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = parse.GetRequiredValue(model);
            if (!Directory.Exists(folder))
            {
                throw new UsageException($"--model {folder} is not a folder.");
            }
            var version = await context.Storage.ModelStore().PublishAsync(folder, cancellationToken: cancellationToken);
            context.WriteLine(version);
            return ExitCodes.Ok;
        });
        return command;
    }

    public static Command CreateModels(GlobalOptions global, CliHost host)
    {
        var list = new Command("list", "List the published versions, newest first; the current one is marked. A version whose manifest cannot be read is listed with the problem (exit code 0).");
        CliApp.Handle(list, global, host, async (_, context, cancellationToken) =>
        {
            var models = await context.Storage.ModelStore().ListAsync(cancellationToken);
            if (models.Count == 0)
            {
                context.WriteLine($"No model has been published to the '{context.Storage.ModelsContainer}' container.");
                return ExitCodes.Ok;
            }
            var table = new Table().AddColumns("current", "version", "created (UTC)", "backbone", "precision", "classes", "accuracy", "problems");
            foreach (var m in models)
            {
                var manifest = m.Manifest;
                table.AddRow(
                    Text(m.IsCurrent ? "*" : ""),
                    Text(m.Version),
                    Text(manifest?.CreatedUtc.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) ?? "-"),
                    Text(manifest?.Backbone ?? "-"),
                    Text(manifest?.Precision.ToString().ToLowerInvariant() ?? "-"),
                    Text(manifest is null ? "-" : Classes(manifest)),
                    Text(manifest?.Metrics?.Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "-"),
                    Text(context.Mask(m.Problem ?? "")));
            }
            context.Console.Write(table);
            return ExitCodes.Ok;
        });

        var version = new Argument<string>("version") { Description = "The version id to make current (see models list)." };
        var promote = new Command("promote", "Make an existing version the current one (also a rollback). The version is verified first.") { version };
        CliApp.Handle(promote, global, host, async (parse, context, cancellationToken) =>
        {
            var id = parse.GetRequiredValue(version);
            if (!ModelCore.Storage.ModelStore.IsValidVersion(id))
            {
                throw new UsageException($"\"{id}\" is not a version id.");
            }
            try
            {
                var pointer = await context.Storage.ModelStore().SetCurrentAsync(id, cancellationToken);
                context.WriteLine($"Current model: {pointer.Version}{(pointer.Previous is { } previous ? $" (was {previous})" : "")}");
            }
            catch (FileNotFoundException e)
            {
                throw new InvalidOperationException($"Version {id} is not in the '{context.Storage.ModelsContainer}' container or is incomplete ({e.Message}).", e);
            }
            return ExitCodes.Ok;
        });

        return new Command("models", "Inspect the model store and choose the served version.") { list, promote };
    }

    private static string Classes(ModelManifest manifest)
    {
        var labels = string.Join(", ", manifest.Labels.Take(5));
        return $"{manifest.Labels.Count} ({labels}{(manifest.Labels.Count > 5 ? ", ..." : "")})";
    }

    /// <summary>A cell as literal text: labels and messages come from users and must not be read as Spectre markup.</summary>
    private static Text Text(string value) => new(value);
}
