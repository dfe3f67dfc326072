using System.CommandLine;
using System.Globalization;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// <c>train</c>: parses the options into the engine's own <see cref="TrainingOptions"/> (or, with
/// <c>--resume</c>, reads those the run was started with), then hands over to <see cref="TrainRun"/>.
/// </summary>
public static class TrainCommand
{
    public const string CheckpointsFolder = "checkpoints";
    public const string ReportHtml = "report.html";
    public const string ReportJson = "report.json";

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var defaults = new TrainingOptions();
        var data = new Option<string?>("--data")
        {
            Description = "Labelled images: a local folder <root>/<label>/<file>, container[/prefix] in the configured storage, or a manifest file (CSV image,label; " +
                "Azure ML JSONL; Vertex AI CSV; SageMaker Ground Truth / Rekognition manifest). Required unless --resume.",
            HelpName = "folder | container[/prefix] | manifest",
        };
        var rewritePrefix = new Option<string[]>("--rewrite-prefix")
        {
            Description = "With a manifest: read image references starting with FROM as TO + the rest, TO being container/[prefix] in the configured storage " +
                "(gs://bucket/=training/ reads gs://bucket/cat/1.jpg as the blob cat/1.jpg of the container training). Repeatable.",
            HelpName = "FROM=TO",
        };
        var output = new Option<string>("--output") { Description = "Folder for the model, report.html, report.json and checkpoints/.", Required = true, HelpName = "folder" };
        var mode = new Option<string>("--mode") { Description = "head: train only a new head on the frozen backbone; finetune: also the stages named by --unfreeze; full: everything.", DefaultValueFactory = _ => "head" };
        mode.AcceptOnlyFromAmong("head", "finetune", "full");
        var unfreeze = new Option<string?>("--unfreeze")
        {
            Description = "With --mode finetune: the backbone's stages to train, by name (layer3,layer4: exactly those) or as a count of last stages (2 = layer3,layer4). " +
                "ResNet: layer1..layer4; VGG: block1..block5, classifier (its 4096-wide layers); AlexNet: block1..block3, classifier; DenseNet: denseblock1..denseblock4. Default: the last stage (layer4, classifier, denseblock4).",
            HelpName = "stages",
        };
        var epochs = new Option<int>("--epochs") { Description = "Number of epochs (at least 1); early stopping may end sooner.", DefaultValueFactory = _ => defaults.Epochs };
        epochs.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--epochs must be >= 1."); } });
        var batchSize = new Option<int>("--batch-size") { Description = "Images per training step.", DefaultValueFactory = _ => defaults.BatchSize };
        batchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        var lr = new Option<double>("--lr") { Description = $"Peak learning rate of the head, in every mode (cosine schedule to 0); unfrozen backbone stages learn at {defaults.BackboneLrFactor.ToString(CultureInfo.InvariantCulture)} x this.", DefaultValueFactory = _ => defaults.LearningRate };
        lr.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 10)) { r.AddError("--lr must be > 0 (and below 10)."); } });
        var seed = new Option<int>("--seed") { Description = "Random seed (data split, initialisation, shuffling, augmentation).", DefaultValueFactory = _ => defaults.Seed };
        var valSplit = new Option<double>("--val-split") { Description = "Fraction of each class held out for validation, between 0 and 1 (exclusive).", DefaultValueFactory = _ => defaults.ValSplit };
        valSplit.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 1)) { r.AddError("--val-split must be between 0 and 1 (exclusive)."); } });
        var device = new Option<string>("--device") { Description = "auto: CUDA when available, else CPU.", DefaultValueFactory = _ => defaults.Device };
        device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        var backbone = new Option<string?>("--backbone")
        {
            Description = $"{BackboneCatalog.DefaultId} (default: ImageNet-pretrained ResNet-18), or a torchvision state_dict file (.pth from torch.save(model.state_dict(), path), or .safetensors) " +
                $"of {string.Join(", ", BackboneCatalog.TorchVisionIds)}: the architecture is detected from its keys and shapes. {TransferTrainer.RandomBackbonePrefix}<id> trains on random weights (tests only).",
            HelpName = "id | weights file",
        };
        var inputSize = new Option<int?>("--input-size") { Description = $"Side of the square model input in pixels (default 224; {BackboneCatalog.DefaultId} takes 224 only). Compute grows with its square.", HelpName = "pixels" };
        inputSize.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 32) { r.AddError("--input-size must be >= 32."); } });
        var resume = new Option<bool>("--resume") { Description = "Continue the interrupted run in --output with the settings it was started with (saved in <output>/checkpoints)." };
        var flip = new Option<bool>("--flip") { Description = "Head mode: also fit the linear probe on each image's mirror image (one more backbone pass). Off by default; never for data where mirroring changes the label (text, arrows)." };
        var precision = new Option<string>("--precision")
        {
            Description = "The graph the model serves. int8: quantised (about 4x smaller, about 2x faster), served only if its accuracy on the validation images is within " +
                $"{new PrecisionOptions().MaxAccuracyDropPoints.ToString(CultureInfo.InvariantCulture)} point of fp32's, otherwise the command fails with the figures (the fp32 model is still written, not published); " +
                "fp32: the exported float graph; auto: int8 when it passes that check, else fp32.",
            DefaultValueFactory = _ => Name(new PrecisionOptions().Precision),
        };
        precision.AcceptOnlyFromAmong("auto", "int8", "fp32");
        var noFlip = new Option<bool>("--no-flip") { Description = "Mirroring changes the label (text, arrows, left/right): no mirrored images in finetune/full augmentation (nor --flip)." };
        var featureCache = new Option<bool>("--feature-cache")
        {
            Description = "Head mode with --data container[/prefix]: keep the frozen backbone's features of every image in the features container (Classifier__FeaturesContainer; " +
                "safetensors, keyed by the backbone and each blob's version) and read them back on the next run, so only new or changed images are decoded and computed.",
        };
        var distributed = new Option<bool>("--distributed")
        {
            Description = "With --feature-cache: the features the store lacks are computed by the Functions app first (a features job on its shard queue, scaled out like " +
                "classify --distributed; follow it with jobs status); the run then reads them and computes only what a parked shard left out.",
        };
        var shardSize = new Option<int>("--shard-size") { Description = "With --distributed: most images per shard (one queue message).", DefaultValueFactory = _ => FeatureJobPlanner.DefaultShardSize };
        shardSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--shard-size must be >= 1."); } });
        var publish = new Option<bool>("--publish") { Description = "Publish the trained model to the model store and make it current." };

        var command = new Command("train", "Train a classifier on labelled images by transfer learning, write the model and a report, optionally publish it.")
        {
            data, rewritePrefix, output, mode, unfreeze, epochs, batchSize, lr, seed, valSplit, device, backbone, inputSize, flip, noFlip, precision, featureCache, distributed, shardSize, resume, publish,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var folder = Path.GetFullPath(parse.GetRequiredValue(output));
            var checkpoints = Path.Combine(folder, CheckpointsFolder);
            SavedRun run;
            if (parse.GetValue(resume))
            {
                var saved = SavedRun.Read(checkpoints)
                    ?? throw new UsageException($"--resume: there is no interrupted run in {folder} (no {Path.Combine(CheckpointsFolder, SavedRun.FileName)}).");
                // Options given again must agree with the run; only --device may change (it changes no result).
                RequireSame(parse, data, saved.Data, FullPathIfLocal);
                RequireSame(parse, rewritePrefix, string.Join(" ", saved.RewritePrefixes ?? []), v => string.Join(" ", v ?? []));
                RequireSame(parse, mode, Name(saved.Options.Mode));
                RequireSame(parse, unfreeze, string.Join(",", saved.Options.UnfreezeStages), v => string.Join(",", ResolveStages(saved.Options.Mode, v, ArchitectureOf(saved.Options.Backbone))));
                RequireSame(parse, epochs, saved.Options.Epochs);
                RequireSame(parse, batchSize, saved.Options.BatchSize);
                RequireSame(parse, lr, saved.Options.LearningRate);
                RequireSame(parse, seed, saved.Options.Seed);
                RequireSame(parse, valSplit, saved.Options.ValSplit);
                RequireSame(parse, backbone, saved.Options.Backbone, ResolveBackbone);
                RequireSame(parse, inputSize, saved.Options.InputSize?.ToString(CultureInfo.InvariantCulture) ?? "");
                RequireSame(parse, flip, saved.Options.FlipFeatures);
                RequireSame(parse, precision, Name(saved.ServedPrecision));
                RequireSame(parse, noFlip, !saved.Options.MirrorAugmentation);
                RequireSame(parse, featureCache, saved.FeatureCache);
                run = IsExplicit(parse, device) ? saved with { Options = saved.Options with { Device = parse.GetRequiredValue(device) } } : saved;
            }
            else
            {
                var trainingMode = Enum.Parse<TrainingMode>(parse.GetRequiredValue(mode), ignoreCase: true);
                if (parse.GetValue(flip) && parse.GetValue(noFlip))
                {
                    throw new UsageException("--flip adds mirror images and --no-flip says mirroring changes the label: give one of them.");
                }
                var backboneId = ResolveBackbone(parse.GetValue(backbone));
                // The architecture from the id or the file's keys and shapes (its tensors are not read yet): it names the stages and the smallest input.
                var architecture = ArchitectureOf(backboneId);
                var size = parse.GetValue(inputSize);
                if (size is { } side && architecture.InputSizeProblem(side) is { } problem)
                {
                    throw new UsageException($"--input-size: {problem}.");
                }
                run = new SavedRun(
                    parse.GetValue(data) ?? throw new UsageException("--data is required (the labelled images), unless --resume continues a run."),
                    defaults with
                    {
                        Mode = trainingMode,
                        UnfreezeStages = ResolveStages(trainingMode, parse.GetValue(unfreeze), architecture),
                        Epochs = parse.GetValue(epochs),
                        BatchSize = parse.GetValue(batchSize),
                        LearningRate = parse.GetValue(lr),
                        Seed = parse.GetValue(seed),
                        ValSplit = parse.GetValue(valSplit),
                        Device = parse.GetRequiredValue(device),
                        Backbone = backboneId,
                        InputSize = size,
                        FlipFeatures = parse.GetValue(flip),
                        MirrorAugmentation = !parse.GetValue(noFlip),
                    },
                    parse.GetValue(rewritePrefix) is { Length: > 0 } rewrites ? rewrites : null,
                    Enum.Parse<PrecisionChoice>(parse.GetRequiredValue(precision), ignoreCase: true),
                    parse.GetValue(featureCache));
                if (run.FeatureCache && trainingMode != TrainingMode.Head)
                {
                    throw new UsageException("--feature-cache applies to --mode head only (finetune and full train the backbone, so its features change every step).");
                }
                if (run.FeatureCache && run.Options.FlipFeatures)
                {
                    throw new UsageException("--feature-cache keeps the features of the images as they are, not of their mirror images: give --flip or --feature-cache, not both.");
                }
                run = run with { Data = FullPathIfLocal(run.Data)! };
            }
            if ((parse.GetValue(distributed) || IsExplicit(parse, shardSize)) && !run.FeatureCache)
            {
                throw new UsageException(parse.GetValue(distributed) ? "--distributed fans out the feature extraction of --feature-cache: give --feature-cache too." : "--shard-size goes with --distributed.");
            }
            int? fanOut = parse.GetValue(distributed) ? parse.GetValue(shardSize) : null;
            return await TrainRun.RunAsync(run, folder, parse.GetValue(resume), parse.GetValue(publish), context, cancellationToken, fanOut);
        });
        return command;
    }

    /// <summary>A folder or manifest file as a full path (so --resume finds it from anywhere); container[/prefix] as given.</summary>
    private static string? FullPathIfLocal(string? data) => data is not null && (Directory.Exists(data) || File.Exists(data)) ? Path.GetFullPath(data) : data;

    internal static string Name(TrainingMode mode) => mode.ToString().ToLowerInvariant();

    internal static string Name(PrecisionChoice precision) => precision.ToString().ToLowerInvariant();

    private static bool IsExplicit(ParseResult parse, Option option) => parse.GetResult(option) is { Implicit: false };

    private static void RequireSame<T>(ParseResult parse, Option<T> option, object saved, Func<T, object?>? resolve = null)
    {
        if (!IsExplicit(parse, option))
        {
            return;
        }
        var given = parse.GetValue(option);
        var value = resolve is null ? given : resolve(given!);
        if (!Equals(Convert.ToString(value, CultureInfo.InvariantCulture), Convert.ToString(saved, CultureInfo.InvariantCulture)))
        {
            throw new UsageException(
                $"--resume continues the run with the settings it was started with: {option.Name} was {Convert.ToString(saved, CultureInfo.InvariantCulture)}, not {given}. " +
                $"Leave {option.Name} out, or start a new run in another --output.");
        }
    }

    /// <summary>Stage names of the architecture as given (in network order), or a count of last stages turned into names; by default the last stage.</summary>
    private static string[] ResolveStages(TrainingMode mode, string? unfreeze, BackboneArchitecture architecture)
    {
        if (mode != TrainingMode.Finetune)
        {
            return unfreeze is null ? [] : throw new UsageException("--unfreeze applies only to --mode finetune (head trains no stage, full trains them all).");
        }
        var stageNames = architecture.StageNames;
        if (string.IsNullOrWhiteSpace(unfreeze))
        {
            return [stageNames[^1]];
        }
        if (int.TryParse(unfreeze, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            return count >= 1 && count <= stageNames.Count
                ? [.. TrainingOptions.LastStages(stageNames, count)]
                : throw new UsageException($"--unfreeze {unfreeze}: a count of last stages of {architecture.Name} must be 1..{stageNames.Count}.");
        }
        var stages = unfreeze.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = stages.FirstOrDefault(s => !stageNames.Contains(s, StringComparer.Ordinal));
        return unknown is null
            ? [.. stageNames.Where(stages.Contains)]
            : throw new UsageException($"--unfreeze: unknown stage \"{unknown}\"; the stages of {architecture.Name} are {string.Join(", ", stageNames)} (or a count of last stages, 1..{stageNames.Count}).");
    }

    /// <summary>The architecture a resolved <c>--backbone</c> names: the default, a <c>random:</c> id, or the one a weights file's keys and shapes describe.</summary>
    private static BackboneArchitecture ArchitectureOf(string backbone)
    {
        if (backbone.StartsWith(TransferTrainer.RandomBackbonePrefix, StringComparison.Ordinal))
        {
            var id = backbone[TransferTrainer.RandomBackbonePrefix.Length..];
            return BackboneCatalog.TorchVisionIds.Contains(id, StringComparer.Ordinal)
                ? BackboneCatalog.Architecture(id)
                : throw new UsageException($"--backbone {backbone}: random initialisation takes {TransferTrainer.RandomBackbonePrefix}<id> with an id of {string.Join(", ", BackboneCatalog.TorchVisionIds)}.");
        }
        return backbone == BackboneCatalog.DefaultId ? BackboneCatalog.Architecture(backbone) : TorchVisionWeights.DetectArchitecture(backbone);
    }

    private static string ResolveBackbone(string? backbone)
    {
        if (string.IsNullOrWhiteSpace(backbone) || backbone == BackboneCatalog.DefaultId)
        {
            return BackboneCatalog.DefaultId;
        }
        if (backbone.StartsWith(TransferTrainer.RandomBackbonePrefix, StringComparison.Ordinal))
        {
            return backbone; // the engine checks the architecture
        }
        if (File.Exists(backbone))
        {
            return Path.GetFullPath(backbone);
        }
        if (BackboneCatalog.Ids.Contains(backbone, StringComparer.Ordinal))
        {
            throw new UsageException(
                $"--backbone {backbone} names an architecture without pretrained weights. Pass {BackboneCatalog.DefaultId} (ImageNet, the default) or the path of a torchvision {backbone} " +
                $"weights file (.pth or .safetensors); {TransferTrainer.RandomBackbonePrefix}{backbone} trains on random weights (tests only).");
        }
        throw new UsageException($"--backbone: \"{backbone}\" is neither {BackboneCatalog.DefaultId} nor an existing weights file (.pth or .safetensors).");
    }
}
