using System.CommandLine;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// <c>train</c>: builds the engine's own <see cref="TrainingPlan"/> from the options (on the mode's defaults, on a plan file
/// given with <c>--plan</c>, or, with <c>--resume</c>, on the plan the run was started with), resolves it, then hands over
/// to <see cref="TrainRun"/>. An option that means nothing for the plan's mode is refused, naming why.
/// </summary>
public static class TrainCommand
{
    public const string CheckpointsFolder = "checkpoints";
    public const string ReportHtml = "report.html";
    public const string ReportJson = "report.json";

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var o = TrainOptions.Create();
        var command = new Command("train", "Train a classifier on labelled images by transfer learning, write the model and a report, optionally publish it.")
        {
            o.Data, o.RewritePrefix, o.Output, o.Plan, o.Mode, o.Unfreeze, o.Epochs, o.BatchSize, o.LearningRate, o.Seed, o.ValSplit, o.Device, o.Backbone, o.InputSize,
            o.Flip, o.NoFlip, o.Precision, o.Int8WeightBits, o.ClassThresholds, o.FeatureCache, o.Distributed, o.ShardSize, o.Resume, o.Checkpoints, o.Publish, o.MultiLabel, o.TargetPrecision,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetRequiredValue(o.Output));
            var resume = parse.GetValue(o.Resume);
            var store = parse.GetValue(o.Checkpoints) is { } at ? StoreAt(at, context) : null;
            var restored = store is not null && await RestoreAsync(store, folder, resume, context, cancellationToken);
            var plan = PlanFromOptions.Build(parse, o, folder, resume);
            if (resume && RunCheckpoint.ReadPlan(Path.Combine(folder, CheckpointsFolder)) is { } started
                && RunCheckpoint.Differences(started, plan) is { Count: > 0 } differences)
            {
                throw new UsageException(
                    $"--resume continues the run with the plan it was started with: {RunCheckpoint.Describe(differences)}{PlanFromOptions.Options(differences.Select(d => d.Name))}. " +
                    "Leave those options out, or start a new run in another --output.");
            }
            if (string.IsNullOrEmpty(plan.Data))
            {
                throw new UsageException("--data is required (the labelled images), unless --resume continues a run or --plan names them.");
            }
            var distributed = parse.GetValue(o.Distributed);
            if ((distributed || PlanFromOptions.IsExplicit(parse, o.ShardSize)) && plan is not HeadPlan { FeatureCache: true })
            {
                throw new UsageException(distributed ? "--distributed fans out the feature extraction of --feature-cache: give --feature-cache too." : "--shard-size goes with --distributed.");
            }
            int? fanOut = distributed ? parse.GetValue(o.ShardSize) : null;
            return await TrainRun.RunAsync(plan, folder, resume || restored, parse.GetValue(o.Publish), parse.GetRequiredValue(o.Device), context, cancellationToken, fanOut,
                store is null ? null : new StoredCheckpoint(store, ReplaceOtherRun: !resume));
        });
        return command;
    }

    /// <summary>The store that <c>--checkpoints container[/prefix]</c> names in the configured storage.</summary>
    private static CheckpointStore StoreAt(string at, CliContext context)
    {
        var slash = at.IndexOf('/', StringComparison.Ordinal);
        var container = slash < 0 ? at : at[..slash];
        var prefix = slash < 0 ? "" : at[(slash + 1)..].Trim('/');
        if (ContainerNames.Problem(container) is { } problem)
        {
            throw new UsageException($"--checkpoints {at}: {problem}.");
        }
        if (prefix.Length > 512 || prefix.Split('/').Any(part => part is "." or ".." || part.Length == 0) && prefix.Length > 0)
        {
            throw new UsageException($"--checkpoints {at}: the prefix must be folder names separated by '/' (no '.', '..' or empty parts), at most 512 characters.");
        }
        return new CheckpointStore(context.Storage.Container(container), prefix);
    }

    /// <summary>
    /// Restores a stored run into <c>--output</c>'s checkpoints when that has none: true when one was restored (the run then
    /// continues it). Without <c>--resume</c> the output must be empty or new, as for any new run.
    /// </summary>
    private static async Task<bool> RestoreAsync(CheckpointStore store, string folder, bool resume, CliContext context, CancellationToken cancellationToken)
    {
        var checkpoints = Path.Combine(folder, CheckpointsFolder);
        if (File.Exists(Path.Combine(checkpoints, RunCheckpoint.FileName)))
        {
            return false;
        }
        if (!resume)
        {
            TrainRun.PrepareOutput(folder, checkpoints, resume: false);
        }
        if (!await store.RestoreAsync(checkpoints, cancellationToken))
        {
            return false;
        }
        context.WriteLine($"Restored the checkpoint of an interrupted run from {store.Location} into {checkpoints}.");
        return true;
    }

    internal static string Name(TrainingMode mode) => mode.ToString().ToLowerInvariant();

    internal static string Name(PrecisionChoice precision) => precision.ToString().ToLowerInvariant();
}
