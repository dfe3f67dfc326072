using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Reports;
using static TorchSharp.torch;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// <c>train</c>: validates the options, prepares the data (a local ImageFolder, or a blob container/prefix
/// downloaded first) and the output folder, runs the <see cref="ITrainingRunner"/> with progress, then
/// writes the model (<see cref="ModelCheckpoint.SaveForServing"/>), <c>report.html</c> and <c>report.json</c>,
/// and publishes with <c>--publish</c>. Ctrl-C keeps <c>checkpoints/</c> and prints how to resume.
/// </summary>
public static class TrainCommand
{
    public const string CheckpointsFolder = "checkpoints";
    public const string ReportHtml = "report.html";
    public const string ReportJson = "report.json";

    private static readonly string[] StageNames = ["layer1", "layer2", "layer3", "layer4"];

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var data = new Option<string>("--data") { Description = "Labelled images: a local folder <root>/<label>/<file>, or container[/prefix] in the configured storage.", Required = true, HelpName = "folder | container[/prefix]" };
        var output = new Option<string>("--output") { Description = "Folder for the model, report.html, report.json and checkpoints/.", Required = true, HelpName = "folder" };
        var mode = new Option<string>("--mode") { Description = "head: train only a new head on the frozen backbone; finetune: also the last stages (--unfreeze); full: everything.", DefaultValueFactory = _ => "head" };
        mode.AcceptOnlyFromAmong("head", "finetune", "full");
        var unfreeze = new Option<string?>("--unfreeze") { Description = "With --mode finetune: the stages to train, as a count of last stages (1 = layer4) or names (layer3,layer4). Default: layer4.", HelpName = "stages" };
        var epochs = new Option<int>("--epochs") { Description = "Number of epochs (at least 1).", DefaultValueFactory = _ => 10 };
        epochs.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--epochs must be >= 1."); } });
        var batchSize = new Option<int>("--batch-size") { Description = "Images per training step.", DefaultValueFactory = _ => 32 };
        batchSize.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--batch-size must be >= 1."); } });
        var lr = new Option<double?>("--lr") { Description = "Learning rate of the head (default: the engine's default for the mode; unfrozen stages use a tenth)." };
        lr.Validators.Add(r => { if (r.GetValueOrDefault<double?>() is { } v && !(v > 0 && v < 10)) { r.AddError("--lr must be > 0 (and below 10)."); } });
        var seed = new Option<int>("--seed") { Description = "Random seed (data split, initialisation, shuffling).", DefaultValueFactory = _ => 42 };
        var valSplit = new Option<double>("--val-split") { Description = "Fraction of each class held out for validation, between 0 and 1 (exclusive).", DefaultValueFactory = _ => 0.2 };
        valSplit.Validators.Add(r => { if (r.GetValueOrDefault<double>() is var v && !(v > 0 && v < 1)) { r.AddError("--val-split must be between 0 and 1 (exclusive)."); } });
        var device = new Option<string>("--device") { Description = "auto: CUDA when available, else CPU.", DefaultValueFactory = _ => "auto" };
        device.AcceptOnlyFromAmong("auto", "cpu", "cuda");
        var backbone = new Option<string?>("--backbone") { Description = $"Pretrained backbone: {string.Join(", ", BackboneCatalog.Ids)} (default {BackboneCatalog.DefaultId}), or a torchvision ResNet weights file (.pth or .safetensors).", HelpName = "name | weights file" };
        var resume = new Option<bool>("--resume") { Description = "Continue the interrupted run whose checkpoint is in <output>/checkpoints." };
        var publish = new Option<bool>("--publish") { Description = "Publish the trained model to the model store and make it current." };

        var command = new Command("train", "Train a classifier on labelled images by transfer learning, write the model and a report, optionally publish it.")
        {
            data, output, mode, unfreeze, epochs, batchSize, lr, seed, valSplit, device, backbone, resume, publish,
        };
        CliApp.Handle(command, global, host, async (parse, context, cancellationToken) =>
        {
            var trainingMode = Enum.Parse<TrainingMode>(parse.GetRequiredValue(mode), ignoreCase: true);
            var options = new TrainSettings(
                parse.GetRequiredValue(data), Path.GetFullPath(parse.GetRequiredValue(output)), trainingMode,
                ResolveStages(trainingMode, parse.GetValue(unfreeze)), parse.GetValue(epochs), parse.GetValue(batchSize), parse.GetValue(lr),
                parse.GetValue(seed), parse.GetValue(valSplit), parse.GetRequiredValue(device), ResolveBackbone(parse.GetValue(backbone)),
                parse.GetValue(resume), parse.GetValue(publish));
            return await RunAsync(options, context, cancellationToken);
        });
        return command;
    }

    private sealed record TrainSettings(
        string Data, string Output, TrainingMode Mode, IReadOnlyList<string> Unfreeze, int Epochs, int BatchSize, double? LearningRate,
        int Seed, double ValidationSplit, string Device, BackboneChoice Backbone, bool Resume, bool Publish);

    private static async Task<int> RunAsync(TrainSettings settings, CliContext context, CancellationToken cancellationToken)
    {
        var checkpoints = Path.Combine(settings.Output, CheckpointsFolder);
        PrepareOutput(settings, checkpoints);
        var device = ResolveDevice(settings.Device);
        var (dataFolder, temporary) = await PrepareDataAsync(settings.Data, context, cancellationToken);
        try
        {
            CheckImageFolder(dataFolder, settings.Data);
            var request = new TrainingRunRequest
            {
                DataFolder = dataFolder,
                CheckpointDirectory = checkpoints,
                Mode = settings.Mode,
                UnfreezeStages = settings.Unfreeze,
                Epochs = settings.Epochs,
                BatchSize = settings.BatchSize,
                LearningRate = settings.LearningRate,
                Seed = settings.Seed,
                ValidationSplit = settings.ValidationSplit,
                Device = device,
                Backbone = settings.Backbone,
                Resume = settings.Resume,
            };
            context.WriteLine($"Training {settings.Mode.ToString().ToLowerInvariant()} on {settings.Data} ({device}, backbone {settings.Backbone}, {settings.Epochs} epochs) into {settings.Output}");
            TrainingRunResult result;
            try
            {
                result = await ProgressDisplay.RunAsync(context, sink => context.TrainingRunner.TrainAsync(request, new TrainingProgressAdapter(sink), cancellationToken));
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                context.Error($"Training was interrupted. The checkpoint in {checkpoints} is kept; continue with the same command plus --resume:");
                context.Error($"  train --data {Quote(settings.Data)} --output {Quote(settings.Output)} --mode {settings.Mode.ToString().ToLowerInvariant()} --epochs {settings.Epochs} --resume");
                return ExitCodes.Cancelled;
            }
            using (result)
            {
                var manifest = await SaveAsync(result, settings, device, dataFolder, context);
                if (settings.Publish)
                {
                    var version = await context.Storage.ModelStore().PublishAsync(settings.Output, cancellationToken: cancellationToken);
                    context.WriteLine($"Published version {version} (now current).");
                }
                context.WriteLine($"Model: {settings.Output} ({manifest.Labels.Count} classes; validation accuracy {Format(manifest.Metrics?.Accuracy)}); report: {Path.Combine(settings.Output, ReportHtml)}");
            }
            return ExitCodes.Ok;
        }
        finally
        {
            if (temporary)
            {
                TryDelete(dataFolder);
            }
        }
    }

    private static async Task<ModelManifest> SaveAsync(TrainingRunResult result, TrainSettings settings, string device, string dataFolder, CliContext context)
    {
        var labels = result.Manifest.Labels;
        var validation = result.ValidationPredictions.Count > 0
            ? Evaluation.Compute(labels, result.ValidationPredictions.Select(p => (p.Actual, p.Predicted)))
            : null;
        List<Reports.SkippedImage> skipped = [.. result.Skipped.Select(s => new Reports.SkippedImage(s.Source, $"{s.Code}: {s.Message}"))];
        var draft = result.Manifest with
        {
            ConfidenceThreshold = result.ConfidenceThreshold,
            Metrics = result.Manifest.Metrics ?? (validation is null ? null : new ValidationMetrics { Accuracy = validation.Accuracy, Samples = validation.Samples }),
            Training = result.Manifest.Training ?? new TrainingSummary
            {
                Mode = settings.Mode.ToString().ToLowerInvariant(),
                Epochs = settings.Epochs,
                BestEpoch = result.BestEpoch,
                BatchSize = settings.BatchSize,
                LearningRate = settings.LearningRate,
                Seed = settings.Seed,
                Device = device,
                TrainCounts = result.Data.Train,
                ValidationCounts = result.Data.Validation,
                SkippedImages = result.Skipped.Count,
            },
        };
        var inputs = VerificationInputs(result, dataFolder, draft.Preprocessing);
        var manifest = ModelCheckpoint.SaveForServing(result.Model, draft, settings.Output, inputs, result.MeanImage);
        var report = new TrainingReport
        {
            Title = $"Training report: {string.Join(", ", labels.Take(8))}{(labels.Count > 8 ? ", ..." : "")}",
            Settings = DescribeSettings(settings, device),
            Labels = labels,
            Data = result.Data,
            History = result.History,
            Validation = validation,
            Skipped = skipped,
            BestEpoch = result.BestEpoch,
            ConfidenceThreshold = result.ConfidenceThreshold,
            Notes = result.Notes,
        };
        await File.WriteAllTextAsync(Path.Combine(settings.Output, ReportHtml), HtmlReport.Render(report), Encoding.UTF8);
        await File.WriteAllTextAsync(Path.Combine(settings.Output, ReportJson), ReportJsonWriter.Write(report), Encoding.UTF8);
        if (skipped.Count > 0)
        {
            context.WriteLine($"{skipped.Count} images were skipped (listed in the report).");
        }
        return manifest;
    }

    /// <summary>A few real images, preprocessed as the model expects, to check the ONNX export against TorchSharp.</summary>
    private static List<float[]> VerificationInputs(TrainingRunResult result, string dataFolder, PreprocessingConfig preprocessing)
    {
        var preprocessor = new ImagePreprocessor(preprocessing, result.MeanImage);
        var decoder = new ImageDecoder();
        var candidates = result.ValidationPredictions.Select(p => p.Source)
            .Concat(Directory.EnumerateFiles(dataFolder, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal));
        var inputs = new List<float[]>();
        foreach (var file in candidates)
        {
            var path = Path.IsPathRooted(file) ? file : Path.Combine(dataFolder, file);
            try
            {
                inputs.Add(preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(path)));
            }
            catch (Exception e) when (e is ImageRejectedException or IOException or UnauthorizedAccessException)
            {
                continue;
            }
            if (inputs.Count == 4)
            {
                break;
            }
        }
        return inputs.Count > 0 ? inputs : throw new InvalidOperationException($"No readable image in {dataFolder} to verify the exported model with.");
    }

    private static List<KeyValuePair<string, string>> DescribeSettings(TrainSettings s, string device) =>
    [
        new("data", s.Data),
        new("mode", s.Mode.ToString().ToLowerInvariant()),
        new("unfreeze", s.Unfreeze.Count == 0 ? "-" : string.Join(",", s.Unfreeze)),
        new("epochs", s.Epochs.ToString(CultureInfo.InvariantCulture)),
        new("batch size", s.BatchSize.ToString(CultureInfo.InvariantCulture)),
        new("learning rate", s.LearningRate?.ToString(CultureInfo.InvariantCulture) ?? "engine default"),
        new("seed", s.Seed.ToString(CultureInfo.InvariantCulture)),
        new("validation split", s.ValidationSplit.ToString(CultureInfo.InvariantCulture)),
        new("device", device),
        new("backbone", s.Backbone.ToString()),
        new("resumed", s.Resume ? "yes" : "no"),
    ];

    private static void PrepareOutput(TrainSettings settings, string checkpoints)
    {
        if (File.Exists(settings.Output))
        {
            throw new UsageException($"--output {settings.Output} is a file; pass a folder.");
        }
        var exists = Directory.Exists(settings.Output);
        if (settings.Resume)
        {
            if (!Directory.Exists(checkpoints) || !Directory.EnumerateFileSystemEntries(checkpoints).Any())
            {
                throw new UsageException($"--resume: there is no checkpoint in {checkpoints} to resume from.");
            }
            return;
        }
        if (exists && Directory.EnumerateFileSystemEntries(settings.Output).Any())
        {
            throw new UsageException($"--output {settings.Output} is not empty: choose an empty or new folder, or pass --resume to continue the run whose checkpoint is in {checkpoints}.");
        }
        Directory.CreateDirectory(checkpoints);
    }

    private static string[] ResolveStages(TrainingMode mode, string? unfreeze)
    {
        if (mode != TrainingMode.Finetune)
        {
            return unfreeze is null ? [] : throw new UsageException("--unfreeze applies only to --mode finetune (head trains no stage, full trains them all).");
        }
        if (string.IsNullOrWhiteSpace(unfreeze))
        {
            return ["layer4"];
        }
        if (int.TryParse(unfreeze, NumberStyles.None, CultureInfo.InvariantCulture, out var count))
        {
            return count is >= 1 and <= 4
                ? StageNames[^count..]
                : throw new UsageException($"--unfreeze {unfreeze}: a count of last stages must be 1..4.");
        }
        var stages = unfreeze.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var unknown = stages.FirstOrDefault(s => !StageNames.Contains(s, StringComparer.Ordinal));
        return unknown is null
            ? [.. StageNames.Where(stages.Contains)]
            : throw new UsageException($"--unfreeze: unknown stage \"{unknown}\"; the stages are {string.Join(", ", StageNames)}.");
    }

    private static BackboneChoice ResolveBackbone(string? backbone)
    {
        if (string.IsNullOrWhiteSpace(backbone))
        {
            return new BackboneChoice(BackboneCatalog.DefaultId, null);
        }
        if (BackboneCatalog.Ids.Contains(backbone, StringComparer.Ordinal))
        {
            return new BackboneChoice(backbone, null);
        }
        if (File.Exists(backbone))
        {
            return new BackboneChoice(null, Path.GetFullPath(backbone));
        }
        throw new UsageException($"--backbone: unknown backbone \"{backbone}\"; use one of {string.Join(", ", BackboneCatalog.Ids)}, or the path of a torchvision ResNet weights file (.pth or .safetensors).");
    }

    private static string ResolveDevice(string device)
    {
        if (device == "cpu")
        {
            return "cpu";
        }
        TorchRuntime.EnsureInitialized();
        var available = cuda.is_available();
        return device switch
        {
            "cuda" when !available => throw new InvalidOperationException(
                "--device cuda: CUDA is not available (this build or machine has no CUDA libtorch or no GPU); use --device cpu or auto."),
            "cuda" => "cuda",
            _ => available ? "cuda" : "cpu",
        };
    }

    /// <summary>A local folder as is; otherwise <c>container[/prefix]</c>, downloaded into a temporary ImageFolder.</summary>
    private static async Task<(string Folder, bool Temporary)> PrepareDataAsync(string data, CliContext context, CancellationToken cancellationToken)
    {
        if (Directory.Exists(data))
        {
            return (Path.GetFullPath(data), false);
        }
        var slash = data.IndexOf('/', StringComparison.Ordinal);
        var containerName = slash < 0 ? data : data[..slash];
        var prefix = slash < 0 ? "" : data[(slash + 1)..].TrimEnd('/');
        if (containerName.Length is < 3 or > 63 || !containerName.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c == '-'))
        {
            throw new UsageException($"--data {data} is neither an existing folder nor container[/prefix] (container names are 3-63 lower-case letters, digits and '-').");
        }
        var container = context.Storage.Container(containerName);
        if (!(await container.ExistsAsync(cancellationToken)).Value)
        {
            throw new InvalidOperationException($"--data: there is no folder {data} and no container '{containerName}' in the configured storage.");
        }
        var folder = Path.Combine(Path.GetTempPath(), "serverless-classifier-data", Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{container.Uri}/{prefix}/{Guid.NewGuid()}")))[..16]);
        Directory.CreateDirectory(folder);
        var blobPrefix = prefix.Length == 0 ? null : prefix + "/";
        var blobs = new List<BlobItem>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, blobPrefix, cancellationToken))
        {
            blobs.Add(blob);
        }
        await ProgressDisplay.RunAsync(context, async sink =>
        {
            var done = 0;
            foreach (var blob in blobs)
            {
                var relative = blobPrefix is null ? blob.Name : blob.Name[blobPrefix.Length..];
                var parts = relative.Split('/');
                // ImageFolder layout: <label>/<file>; deeper names keep their path below the label folder.
                if (parts.Length >= 2 && parts.All(p => ModelManifest.IsPlainFileName(p)))
                {
                    var target = Path.Combine(folder, Path.Combine(parts));
                    Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                    await container.GetBlobClient(blob.Name).DownloadToAsync(target, cancellationToken);
                }
                sink.Report("download", ++done, blobs.Count);
            }
            return done;
        });
        return (folder, true);
    }

    private static void CheckImageFolder(string folder, string source)
    {
        var labels = Directory.GetDirectories(folder);
        if (labels.Length < 2)
        {
            throw new UsageException($"--data {source}: expected one subfolder per label (<root>/<label>/<file>) and at least two labels; found {labels.Length}.");
        }
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Quote(string value) => value.Contains(' ', StringComparison.Ordinal) ? $"\"{value}\"" : value;

    private static string Format(double? value) => value is { } v ? v.ToString("P1", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>Turns the engine's progress into bars and one line per finished epoch.</summary>
    private sealed class TrainingProgressAdapter(IProgressSink sink) : IProgress<TrainingRunProgress>
    {
        public void Report(TrainingRunProgress value)
        {
            if (value.Phase == "info")
            {
                // A message only; no bar.
            }
            else if (value.Epochs > 0 && value.Epoch > 0)
            {
                var steps = Math.Max(1, value.Steps);
                sink.Report(value.Phase, (value.Epoch - 1) + (double)Math.Min(value.Step, steps) / steps, value.Epochs);
            }
            else
            {
                sink.Report(value.Phase, value.Step, Math.Max(1, value.Steps));
            }
            if (value.EpochDone is { } e)
            {
                sink.Line(string.Create(CultureInfo.InvariantCulture,
                    $"epoch {e.Epoch}/{value.Epochs}: train loss {e.TrainLoss:0.####} acc {e.TrainAccuracy:P1}; val loss {e.ValidationLoss:0.####} acc {e.ValidationAccuracy:P1}"));
            }
            if (value.Message is { } message)
            {
                sink.Line(message);
            }
        }
    }
}

/// <summary><c>report.json</c>: the report's numbers for scripts.</summary>
public static class ReportJsonWriter
{
    private static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static string Write(TrainingReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var ratio = report.Data.ImbalanceRatio;
        return JsonSerializer.Serialize(new
        {
            report.Title,
            report.CreatedUtc,
            Settings = report.Settings.ToDictionary(s => s.Key, s => s.Value),
            report.Labels,
            Data = new { report.Data.Train, report.Data.Validation, ImbalanceRatio = double.IsFinite(ratio) ? ratio : (double?)null },
            report.History,
            report.BestEpoch,
            report.ConfidenceThreshold,
            Validation = report.Validation is { } v ? MetricsJson.Create(v) : null,
            report.Skipped,
            report.Notes,
        }, Options);
    }
}

/// <summary>The JSON shape of an <see cref="EvaluationReport"/> (shared by report.json and <c>evaluate --json</c>).</summary>
public static class MetricsJson
{
    public static Dictionary<string, object> Create(EvaluationReport metrics)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        return new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["accuracy"] = metrics.Accuracy,
            ["samples"] = metrics.Samples,
            ["labels"] = metrics.Labels,
            ["perClass"] = metrics.PerClass.ToDictionary(c => c.Label, c => new { c.Precision, c.Recall, c.F1, c.Support }, StringComparer.Ordinal),
            ["confusion"] = metrics.ConfusionMatrix,
        };
    }
}
