using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// The engine's <see cref="TrainingPlan"/> from <c>train</c>'s options: the options given explicitly, applied to the mode's
/// defaults, to a plan file (<c>--plan</c>) or, with <c>--resume</c>, to the plan the run was started with; then resolved by
/// the engine's own rules. An option that means nothing for the plan's mode is refused, saying why.
/// </summary>
internal static class PlanFromOptions
{
    /// <summary>The resolved plan the command line asks for.</summary>
    public static TrainingPlan Build(ParseResult parse, TrainOptions o, string folder, bool resume) => Resolved(BuildPlan(parse, o, StartingPlan(parse, o, folder, resume)));

    /// <summary>What the options apply to: the plan the run was started with (<c>--resume</c>), a plan file (<c>--plan</c>), or the mode's defaults.</summary>
    private static TrainingPlan StartingPlan(ParseResult parse, TrainOptions o, string folder, bool resume)
    {
        var mode = IsExplicit(parse, o.Mode) ? Enum.Parse<TrainingMode>(parse.GetRequiredValue(o.Mode), ignoreCase: true) : (TrainingMode?)null;
        TrainingPlan start;
        if (resume)
        {
            if (parse.GetValue(o.Plan) is not null)
            {
                throw new UsageException("--resume continues with the plan the run was started with: give --plan or --resume, not both.");
            }
            var checkpoints = Path.Combine(folder, TrainCommand.CheckpointsFolder);
            start = ReadPlan(() => RunCheckpoint.ReadPlan(checkpoints))
                ?? throw new UsageException($"--resume: there is no interrupted run in {folder} (no {Path.Combine(TrainCommand.CheckpointsFolder, RunCheckpoint.FileName)}).");
        }
        else if (parse.GetValue(o.Plan) is { } file)
        {
            start = ReadPlanFile(file);
        }
        else
        {
            return TrainingPlan.For(mode ?? TrainingMode.Head);
        }
        if (mode is { } asked && asked != start.Mode)
        {
            throw new UsageException(resume
                ? $"--resume continues the run with the plan it was started with: mode was {TrainCommand.Name(start.Mode)}, not {TrainCommand.Name(asked)}. Leave --mode out, or start a new run in another --output."
                : $"--mode {TrainCommand.Name(asked)} contradicts the plan file's mode, {TrainCommand.Name(start.Mode)}: leave --mode out, or edit the plan.");
        }
        return start;
    }

    /// <summary>The options given explicitly, applied to <paramref name="plan"/>; those that mean nothing for its mode are refused.</summary>
    private static TrainingPlan BuildPlan(ParseResult parse, TrainOptions o, TrainingPlan plan)
    {
        if (parse.GetValue(o.Data) is { } data)
        {
            plan = plan with { Data = Directory.Exists(data) || File.Exists(data) ? Path.GetFullPath(data) : data };
        }
        if (IsExplicit(parse, o.RewritePrefix))
        {
            plan = plan with { RewritePrefixes = parse.GetValue(o.RewritePrefix) ?? [] };
        }
        if (IsExplicit(parse, o.Backbone))
        {
            plan = plan with { Backbone = BackboneOption(parse.GetValue(o.Backbone)), Architecture = null };
        }
        if (IsExplicit(parse, o.InputSize))
        {
            plan = plan with { InputSize = parse.GetValue(o.InputSize) };
        }
        if (IsExplicit(parse, o.Seed))
        {
            plan = plan with { Seed = parse.GetValue(o.Seed) };
        }
        if (IsExplicit(parse, o.ValSplit))
        {
            plan = plan with { ValSplit = parse.GetValue(o.ValSplit) };
        }
        if (IsExplicit(parse, o.Precision))
        {
            plan = plan with { Precision = plan.Precision with { Precision = Enum.Parse<PrecisionChoice>(parse.GetRequiredValue(o.Precision), ignoreCase: true) } };
        }
        if (IsExplicit(parse, o.Int8WeightBits))
        {
            var bits = parse.GetRequiredValue(o.Int8WeightBits);
            plan = plan with { Precision = plan.Precision with { Int8WeightBits = bits == "auto" ? null : int.Parse(bits, CultureInfo.InvariantCulture) } };
            if (plan.Precision.Precision == PrecisionChoice.Fp32)
            {
                throw new UsageException("--int8-weight-bits chooses the int8 graph's weights, and --precision fp32 makes no int8 graph: give --precision auto or int8, or leave --int8-weight-bits out.");
            }
        }
        if (IsExplicit(parse, o.ClassThresholds))
        {
            plan = plan with { ClassThresholds = parse.GetValue(o.ClassThresholds) };
        }
        if (parse.GetValue(o.MultiLabel))
        {
            plan = plan with { MultiLabel = true };
        }
        if (parse.GetValue(o.TargetPrecision) is { } target)
        {
            plan = plan with { TargetPrecision = target };
        }
        if (plan is FullPlan && (plan.MultiLabel == true || plan.TargetPrecision is not null))
        {
            throw new UsageException($"--multilabel (and --target-precision) train with --mode head or finetune for now: training every layer of a multi-label model (--mode full) with a binary loss is not built yet.");
        }
        var flip = parse.GetValue(o.Flip);
        var noFlip = parse.GetValue(o.NoFlip);
        if (flip && noFlip)
        {
            throw new UsageException("--flip adds mirror images and --no-flip says mirroring changes the label: give one of them.");
        }
        switch (plan)
        {
            case HeadPlan head:
                Refuse(parse, o.Epochs, "head mode fits its linear probe to convergence, with no epochs");
                Refuse(parse, o.BatchSize, "head mode fits its linear probe on every image at once");
                Refuse(parse, o.LearningRate, "head mode fits its linear probe with L-BFGS, whose L2 strength is chosen by cross-validation");
                Refuse(parse, o.Unfreeze, "head mode trains no stage (finetune trains those named, full trains them all)");
                return head with
                {
                    MirrorFeatures = flip || (!noFlip && head.MirrorFeatures),
                    FeatureCache = IsExplicit(parse, o.FeatureCache) ? parse.GetValue(o.FeatureCache) : head.FeatureCache,
                };
            case EpochPlan epochs:
                Refuse(parse, o.Flip, "mirrored features are a head-mode choice; finetune and full mirror images in their augmentation unless --no-flip");
                Refuse(parse, o.FeatureCache, "finetune and full train the backbone, so its features change every step");
                epochs = epochs with
                {
                    Epochs = IsExplicit(parse, o.Epochs) ? parse.GetValue(o.Epochs) : epochs.Epochs,
                    BatchSize = IsExplicit(parse, o.BatchSize) ? parse.GetValue(o.BatchSize) : epochs.BatchSize,
                    LearningRate = IsExplicit(parse, o.LearningRate) ? parse.GetValue(o.LearningRate) : epochs.LearningRate,
                    MirrorAugmentation = !noFlip && epochs.MirrorAugmentation,
                };
                if (epochs is FinetunePlan finetune)
                {
                    return IsExplicit(parse, o.Unfreeze) ? finetune with { Stages = Stages(parse.GetValue(o.Unfreeze), ArchitectureOf(finetune)) } : finetune;
                }
                Refuse(parse, o.Unfreeze, "full mode trains every stage (finetune trains those named)");
                return epochs;
            default:
                throw new UsageException($"Unknown mode {plan.Mode}.");
        }
    }

    /// <summary>The plan resolved by the engine's rules; a plan it refuses is a usage error naming the setting.</summary>
    private static TrainingPlan Resolved(TrainingPlan plan)
    {
        try
        {
            return plan.Resolve();
        }
        catch (PlanException e)
        {
            throw new UsageException(OptionOf.TryGetValue(e.Setting, out var option) ? $"{option}: {e.Message}" : e.Message);
        }
    }

    /// <summary>The options of the plan settings that have one, for messages (a setting without one is named alone).</summary>
    private static readonly Dictionary<string, string> OptionOf = new(StringComparer.Ordinal)
    {
        ["data"] = "--data",
        ["manifest prefix rewrites"] = "--rewrite-prefix",
        ["backbone"] = "--backbone",
        ["input size"] = "--input-size",
        ["seed"] = "--seed",
        ["validation split"] = "--val-split",
        ["precision"] = "--precision",
        ["int8 weight bits"] = "--int8-weight-bits",
        ["class thresholds"] = "--class-thresholds",
        ["mirror-image features"] = "--flip",
        ["feature cache"] = "--feature-cache",
        ["epochs"] = "--epochs",
        ["batch size"] = "--batch-size",
        ["learning rate"] = "--lr",
        ["mirror augmentation"] = "--no-flip",
        ["unfrozen stages"] = "--unfreeze",
        ["mode"] = "--mode",
    };

    /// <summary>" (--lr, --epochs)": the options of those settings, when any has one.</summary>
    public static string Options(IEnumerable<string> settings) =>
        settings.Select(s => OptionOf.GetValueOrDefault(s)).OfType<string>().Distinct().ToList() is { Count: > 0 } options ? $" (given as {string.Join(", ", options)})" : "";

    /// <summary>A plan file: a plan's JSON, or a run's <c>run.json</c> (whose <c>plan</c> it takes).</summary>
    private static TrainingPlan ReadPlanFile(string file)
    {
        if (!File.Exists(file))
        {
            throw new UsageException($"--plan {file}: no such file.");
        }
        return ReadPlan(() =>
        {
            var text = File.ReadAllText(file);
            using var json = JsonDocument.Parse(text);
            return TrainingPlan.FromJson(json.RootElement.TryGetProperty("plan", out var inner) && inner.ValueKind == JsonValueKind.Object ? inner.GetRawText() : text);
        }) ?? throw new UsageException($"--plan {file}: the file holds no plan.");
    }

    private static TrainingPlan? ReadPlan(Func<TrainingPlan?> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is PlanException or JsonException or TrainingException)
        {
            throw new UsageException(e.Message);
        }
    }

    public static bool IsExplicit(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    private static void Refuse(ParseResult parse, Option option, string why)
    {
        if (IsExplicit(parse, option))
        {
            throw new UsageException($"{option.Name} does not apply here: {why}.");
        }
    }

    /// <summary>Stage names of the architecture as given (in network order), or a count of last stages turned into names.</summary>
    private static string[] Stages(string? unfreeze, BackboneArchitecture architecture)
    {
        var stageNames = architecture.StageNames;
        if (string.IsNullOrWhiteSpace(unfreeze))
        {
            return [];
        }
        if (int.TryParse(unfreeze, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            return count >= 1 && count <= stageNames.Count
                ? [.. stageNames.Skip(stageNames.Count - count)]
                : throw new UsageException($"--unfreeze {unfreeze}: a count of last stages of {architecture.Name} must be 1..{stageNames.Count}.");
        }
        var stages = unfreeze.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = stages.FirstOrDefault(s => !stageNames.Contains(s, StringComparer.Ordinal));
        return unknown is null
            ? [.. stageNames.Where(stages.Contains)]
            : throw new UsageException($"--unfreeze: unknown stage \"{unknown}\"; the stages of {architecture.Name} are {string.Join(", ", stageNames)} (or a count of last stages, 1..{stageNames.Count}).");
    }

    /// <summary>The architecture a plan's backbone names (a weights file's keys and shapes are read, not its tensors).</summary>
    private static BackboneArchitecture ArchitectureOf(TrainingPlan plan)
    {
        try
        {
            return plan.ParseBackbone().Architecture;
        }
        catch (PlanException e)
        {
            throw new UsageException($"{OptionOf[e.Setting]}: {e.Message}");
        }
    }

    /// <summary><c>--backbone</c> as the plan stores it: a weights file's full path, else as given (the plan checks it).</summary>
    private static string BackboneOption(string? backbone) =>
        string.IsNullOrWhiteSpace(backbone) ? BackboneCatalog.DefaultId : File.Exists(backbone) ? Path.GetFullPath(backbone) : backbone;
}
