using System.CommandLine;
using System.Globalization;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>The options of <c>train</c>: defined once (their defaults are the plans' own), read by the handler and by <see cref="PlanFromOptions"/>.</summary>
internal sealed class TrainOptions
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
    public required Option<string> Int8WeightBits { get; init; }
    public required Option<string?> ClassThresholds { get; init; }
    public required Option<bool> FeatureCache { get; init; }
    public required Option<bool> Distributed { get; init; }
    public required Option<int> ShardSize { get; init; }
    public required Option<bool> Resume { get; init; }
    public required Option<string?> Checkpoints { get; init; }
    public required Option<bool> Publish { get; init; }
    public required Option<bool> MultiLabel { get; init; }
    public required Option<double?> TargetPrecision { get; init; }

    public static TrainOptions Create()
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
                DefaultValueFactory = _ => TrainCommand.Name(new PrecisionOptions().Precision),
            },
            Int8WeightBits = new Option<string>("--int8-weight-bits")
            {
                Description = "Bits of the int8 graph's weights, for the CPU that will SERVE the model: auto (default): this training CPU's choice, 8 with VNNI, else 7; " +
                    "8: serving CPUs with VNNI (AVX-512 VNNI or AVX-VNNI) only; 7: any x86 CPU. On a CPU without VNNI (AVX2, e.g. AMD EPYC Milan) an 8-bit graph's " +
                    "integer sums can saturate, so it serves answers its check did not measure: give 7 when the serving CPUs are unknown or may lack VNNI.",
                DefaultValueFactory = _ => "auto",
                HelpName = "auto|8|7",
            },
            ClassThresholds = new Option<string?>("--class-thresholds")
            {
                Description = "Give classes thresholds of their own, chosen on the out-of-fold (or validation) predictions: f1, the best F1 of each class's answers; " +
                    "precision=P, the lowest threshold whose answers reach precision P (a class that cannot reach it keeps the single threshold, with a warning). " +
                    "Shown in report.html, applied in serving unless a request gives threshold=. Default: one threshold for every class. " +
                    "A multi-label model has a threshold per label anyway: f1 is its default rule, precision=P the same as --target-precision P.",
                HelpName = "f1|precision=P",
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
            Checkpoints = new Option<string?>("--checkpoints")
            {
                Description = "Keep the run's checkpoint in the configured storage too, under container[/prefix]: copied when the run starts and after every epoch, " +
                    "removed when the run completes. The same command run again with an empty --output (a retried job after a node loss) restores it and continues " +
                    "after the last completed epoch when the plan and data are the same; a stored run with another plan or data is replaced by the new one. " +
                    "With --resume, the stored run is restored when --output has none.",
                HelpName = "container[/prefix]",
            },
            Publish = new Option<bool>("--publish") { Description = "Publish the trained model to the model store and make it current." },
            MultiLabel = new Option<bool>("--multilabel")
            {
                Description = "Train a multi-label model (zero or more labels per image; one sigmoid and threshold per label) from a manifest. Without it, a manifest " +
                    "with several labels in a row (label columns, an Azure ML label array, Ground Truth multilabel metadata) is detected as multi-label; with it, a cell's ';' also " +
                    "separates labels and rows without a label are negatives. Head or finetune mode (a binary loss); not full.",
            },
            TargetPrecision = new Option<double?>("--target-precision")
            {
                Description = "Multi-label: each label's threshold is the lowest whose out-of-fold precision reaches this (0..1, e.g. 0.9), instead of the threshold of best F1.",
                HelpName = "fraction",
            },
        };
        o.TargetPrecision.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is { } v && !(v > 0 && v <= 1)) { r.AddError("--target-precision must be above 0 and at most 1."); } });
        o.Mode.AcceptOnlyFromAmong("head", "finetune", "full");
        o.Device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        o.Precision.AcceptOnlyFromAmong("auto", "int8", "fp32");
        o.Int8WeightBits.AcceptOnlyFromAmong("auto", "8", "7");
        o.Epochs.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--epochs must be >= 1."); } });
        o.BatchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        o.LearningRate.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 10)) { r.AddError("--lr must be > 0 (and below 10)."); } });
        o.ValSplit.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 1)) { r.AddError("--val-split must be between 0 and 1 (exclusive)."); } });
        o.InputSize.Validators.Add(r => { if (r.GetValueOrDefault<int?>() is < 32) { r.AddError("--input-size must be >= 32."); } });
        o.ShardSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 5000) { r.AddError("--shard-size must be between 1 and 5000."); } });
        return o;
    }
}
