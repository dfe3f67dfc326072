using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Jobs;
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
        var finetuneDefaults = new FinetunePlan();
        var o = new TrainOptions
        {
            Data = new Option<string?>("--data")
            {
                Description = "Labelled images: a local folder <root>/<label>/<file>, container[/prefix] in the configured storage, or a manifest file (CSV image,label; " +
                    "Azure ML JSONL; Vertex AI CSV; SageMaker Ground Truth / Rekognition manifest). Required unless --resume or --plan gives it.",
                HelpName = "folder | container[/prefix] | manifest",
            },
            RewritePrefix = new Option<string[]>("--rewrite-prefix")
            {
                Description = "With a manifest: read image references starting with FROM as TO + the rest, TO being container/[prefix] in the configured storage " +
                    "(gs://bucket/=training/ reads gs://bucket/cat/1.jpg as the blob cat/1.jpg of the container training). Repeatable.",
                HelpName = "FROM=TO",
            },
            Output = new Option<string>("--output") { Description = "Folder for the model, report.html, report.json and checkpoints/.", Required = true, HelpName = "folder" },
            Plan = new Option<string?>("--plan")
            {
                Description = "Start from a training plan file: the JSON a run prints and stores in <output>/checkpoints/run.json (either file), with every setting of its mode, " +
                    "including those without an option here (folds, patience, label smoothing, head start, int8 quantiser...). Options given as well override it.",
                HelpName = "file",
            },
            Mode = new Option<string>("--mode") { Description = "head: fit a new head on the frozen backbone (a linear probe); finetune: also train the stages named by --unfreeze; full: everything.", DefaultValueFactory = _ => "head" },
            Unfreeze = new Option<string?>("--unfreeze")
            {
                Description = "With --mode finetune: the backbone's stages to train, by name (layer3,layer4: exactly those) or as a count of last stages (2 = layer3,layer4). " +
                    "ResNet: layer1..layer4; VGG: block1..block5, classifier (its 4096-wide layers); AlexNet: block1..block3, classifier; DenseNet: denseblock1..denseblock4. Default: the last stage (layer4, classifier, denseblock4).",
                HelpName = "stages",
            },
            Epochs = new Option<int>("--epochs") { Description = "finetune and full: most epochs (at least 1); early stopping may end sooner.", DefaultValueFactory = _ => finetuneDefaults.Epochs },
            BatchSize = new Option<int>("--batch-size") { Description = "finetune and full: images per training step.", DefaultValueFactory = _ => finetuneDefaults.BatchSize },
            LearningRate = new Option<double>("--lr")
            {
                Description = $"finetune and full: peak learning rate of the head (cosine schedule to 0); backbone stages learn at {finetuneDefaults.BackboneLrFactor.ToString(CultureInfo.InvariantCulture)} x this.",
                DefaultValueFactory = _ => finetuneDefaults.LearningRate,
            },
            Seed = new Option<int>("--seed") { Description = "Random seed (data split, initialisation, shuffling, augmentation, folds).", DefaultValueFactory = _ => finetuneDefaults.Seed },
            ValSplit = new Option<double>("--val-split") { Description = "Fraction of each class held out for validation, between 0 and 1 (exclusive).", DefaultValueFactory = _ => finetuneDefaults.ValSplit },
            Device = new Option<string>("--device") { Description = "auto: CUDA when available, else CPU. May change on --resume (it changes no result).", DefaultValueFactory = _ => "auto" },
            Backbone = new Option<string?>("--backbone")
            {
                Description = $"{BackboneCatalog.DefaultId} (default: ImageNet-pretrained ResNet-18), or a torchvision state_dict file (.pth from torch.save(model.state_dict(), path), or .safetensors) " +
                    $"of {string.Join(", ", BackboneCatalog.TorchVisionIds)}: the architecture is detected from its keys and shapes. {BackboneReference.RandomPrefix}<id> trains on random weights (tests only).",
                HelpName = "id | weights file",
            },
            InputSize = new Option<int?>("--input-size") { Description = $"Side of the square model input in pixels (default 224; {BackboneCatalog.DefaultId} takes 224 only). Compute grows with its square.", HelpName = "pixels" },
            Flip = new Option<bool>("--flip") { Description = "Head mode: also fit the linear probe on each image's mirror image (one more backbone pass). Off by default; never for data where mirroring changes the label (text, arrows)." },
            NoFlip = new Option<bool>("--no-flip") { Description = "Mirroring changes the label (text, arrows, left/right): no mirrored images, neither in finetune/full augmentation nor as head-mode features (--flip)." },
            Precision = new Option<string>("--precision")
            {
                Description = "The graph the model serves. int8: quantised (about 4x smaller, about 2x faster), served only if its accuracy on the images the validation figures come from is within " +
                    $"{new PrecisionOptions().MaxAccuracyDropPoints.ToString(CultureInfo.InvariantCulture)} point of fp32's, otherwise the command fails with the figures (the fp32 model is still written, not published); " +
                    "fp32: the exported float graph; auto: int8 when it passes that check, else fp32.",
                DefaultValueFactory = _ => Name(new PrecisionOptions().Precision),
            },
            FeatureCache = new Option<bool>("--feature-cache")
            {
                Description = "Head mode with --data container[/prefix]: keep the frozen backbone's features of every image in the features container (Classifier__FeaturesContainer; " +
                    "safetensors, keyed by the backbone and each blob's version) and read them back on the next run, so only new or changed images are decoded and computed.",
            },
            Distributed = new Option<bool>("--distributed")
            {
                Description = "With --feature-cache: the features the store lacks are computed by the Functions app first (a features job on its shard queue, scaled out like " +
                    "classify --distributed; follow it with jobs status); the run then reads them and computes only what a parked shard left out.",
            },
            ShardSize = new Option<int>("--shard-size") { Description = "With --distributed: most images per shard (one queue message).", DefaultValueFactory = _ => FeatureJobPlanner.DefaultShardSize },
            Resume = new Option<bool>("--resume") { Description = "Continue the interrupted run in --output with the plan it was started with (in <output>/checkpoints/run.json); options given again must agree with it." },
            Publish = new Option<bool>("--publish") { Description = "Publish the trained model to the model store and make it current." },
        };
        o.Mode.AcceptOnlyFromAmong("head", "finetune", "full");
        o.Device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        o.Precision.AcceptOnlyFromAmong("auto", "int8", "fp32");
        o.Epochs.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--epochs must be >= 1."); } });
        o.BatchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        o.LearningRate.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 10)) { r.AddError("--lr must be > 0 (and below 10)."); } });
        o.ValSplit.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 1)) { r.AddError("--val-split must be between 0 and 1 (exclusive)."); } });
        o.InputSize.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 32) { r.AddError("--input-size must be >= 32."); } });
        o.ShardSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--shard-size must be >= 1."); } });

        var command = new Command("train", "Train a classifier on labelled images by transfer learning, write the model and a report, optionally publish it.")
        {
            o.Data, o.RewritePrefix, o.Output, o.Plan, o.Mode, o.Unfreeze, o.Epochs, o.BatchSize, o.LearningRate, o.Seed, o.ValSplit, o.Device, o.Backbone, o.InputSize,
            o.Flip, o.NoFlip, o.Precision, o.FeatureCache, o.Distributed, o.ShardSize, o.Resume, o.Publish,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetRequiredValue(o.Output));
            var resume = parse.GetValue(o.Resume);
            var plan = Resolved(BuildPlan(parse, o, StartingPlan(parse, o, folder, resume)));
            if (resume && RunCheckpoint.ReadPlan(Path.Combine(folder, CheckpointsFolder)) is { } started
                && RunCheckpoint.Differences(started, plan) is { Count: > 0 } differences)
            {
                throw new UsageException(
                    $"--resume continues the run with the plan it was started with: {RunCheckpoint.Describe(differences)}{Options(differences.Select(d => d.Name))}. " +
                    "Leave those options out, or start a new run in another --output.");
            }
            if (string.IsNullOrEmpty(plan.Data))
            {
                throw new UsageException("--data is required (the labelled images), unless --resume continues a run or --plan names them.");
            }
            var distributed = parse.GetValue(o.Distributed);
            if ((distributed || IsExplicit(parse, o.ShardSize)) && plan is not HeadPlan { FeatureCache: true })
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

    /// <summary>The options of <c>train</c>, built once and read by the handler.</summary>
    private sealed class TrainOptions
    {
        public required Option<string?> Data { get; init; }
        public required Option<string[]> RewritePrefix { get; init; }
        public required Option<string> Output { get; init; }
        public required Option<string?> Plan { get; init; }
        public required Option<string> Mode { get; init; }
        public required Option<string?> Unfreeze { get; init; }
        public required Option<int> Epochs { get; init; }
        public required Option<int> BatchSize { get; init; }
        public required Option<double> LearningRate { get; init; }
        public required Option<int> Seed { get; init; }
        public required Option<double> ValSplit { get; init; }
        public required Option<string> Device { get; init; }
        public required Option<string?> Backbone { get; init; }
        public required Option<int?> InputSize { get; init; }
        public required Option<bool> Flip { get; init; }
        public required Option<bool> NoFlip { get; init; }
        public required Option<string> Precision { get; init; }
        public required Option<bool> FeatureCache { get; init; }
        public required Option<bool> Distributed { get; init; }
        public required Option<int> ShardSize { get; init; }
        public required Option<bool> Resume { get; init; }
        public required Option<bool> Publish { get; init; }
    }

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
            var checkpoints = Path.Combine(folder, CheckpointsFolder);
            start = ReadPlan(() => RunCheckpoint.ReadPlan(checkpoints))
                ?? throw new UsageException($"--resume: there is no interrupted run in {folder} (no {Path.Combine(CheckpointsFolder, RunCheckpoint.FileName)}).");
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
                ? $"--resume continues the run with the plan it was started with: mode was {Name(start.Mode)}, not {Name(asked)}. Leave --mode out, or start a new run in another --output."
                : $"--mode {Name(asked)} contradicts the plan file's mode, {Name(start.Mode)}: leave --mode out, or edit the plan.");
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
    private static string Options(IEnumerable<string> settings) =>
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

    private static bool IsExplicit(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

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
