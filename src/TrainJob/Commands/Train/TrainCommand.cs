using System.CommandLine;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Plans;
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
            o.Flip, o.NoFlip, o.Precision, o.FeatureCache, o.Distributed, o.ShardSize, o.Resume, o.Publish,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetRequiredValue(o.Output));
            var resume = parse.GetValue(o.Resume);
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
            return await TrainRun.RunAsync(plan, folder, resume, parse.GetValue(o.Publish), parse.GetRequiredValue(o.Device), context, cancellationToken, fanOut);
        });
        return command;
    }

    internal static string Name(TrainingMode mode) => mode.ToString().ToLowerInvariant();

    internal static string Name(PrecisionChoice precision) => precision.ToString().ToLowerInvariant();
}
