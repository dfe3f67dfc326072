using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Reports;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// One <c>train</c> run: checks the output folder, loads the data set the plan names (a local folder, a blob
/// container/prefix or a manifest, through <see cref="ImageFolderDataset"/>), runs the <see cref="TrainingEngine"/>
/// with progress (it writes the model package into the output folder), then writes the reports
/// (<see cref="TrainingOutput"/>) and publishes with <c>--publish</c>. Ctrl-C keeps <c>checkpoints/</c>
/// and prints the one command that continues.
/// </summary>
/// <summary>The run's checkpoint kept in storage too (<c>train --checkpoints</c>), and whether a stored run of another plan or data is replaced.</summary>
internal sealed record StoredCheckpoint(CheckpointStore Store, bool ReplaceOtherRun);

internal static class TrainRun
{
    /// <summary>The multi-label folder layout's file: <c>image,labels</c> per line beside the images, labels separated by ';'.</summary>
    public const string MultiLabelCsv = "labels.csv";

    /// <param name="plan">The resolved plan.</param>
    /// <param name="fanOutShardSize">With the plan's feature cache: have the Functions app compute the missing features first, in shards of this many images.</param>
    public static async Task<int> RunAsync(TrainingPlan plan, string output, bool resume, bool publish, string device, CliContext context, CancellationToken cancellationToken,
        int? fanOutShardSize = null, StoredCheckpoint? stored = null)
    {
        var checkpoints = Path.Combine(output, TrainCommand.CheckpointsFolder);
        PrepareOutput(output, checkpoints, resume);
        var deviceName = TrainingEngine.ResolveDevice(device).type.ToString().ToLowerInvariant();
        var epochs = plan is EpochPlan e ? e.Epochs : 0;
        var what = plan switch
        {
            FinetunePlan f => $"finetune, unfreeze {string.Join(",", f.Stages)}, up to {f.Epochs} epochs",
            FullPlan f => $"full, up to {f.Epochs} epochs",
            _ => "head (linear probe)",
        };
        context.WriteLine($"Training {what} on {plan.Data} ({deviceName}, backbone {plan.Backbone}) into {output}");
        ImageFolderDataset dataset;
        TrainingResult result;
        try
        {
            (dataset, result) = await ProgressDisplay.RunAsync(context, async sink =>
            {
                var progress = new TrainingProgressView(sink, epochs);
                var loaded = await LoadDatasetAsync(plan, context, progress, cancellationToken);
                var featureCache = plan is HeadPlan { FeatureCache: true };
                var run = new TrainingRun
                {
                    CheckpointDirectory = checkpoints,
                    Resume = resume,
                    ReplaceOtherRun = stored?.ReplaceOtherRun ?? false,
                    CheckpointSaved = stored is null ? null : folder => Keep(stored.Store, folder, sink),
                    Device = device,
                    FeatureStore = featureCache ? context.Storage.Features() : null,
                    FeatureFanOut = featureCache && fanOutShardSize is { } shardSize ? JobCommands.FeatureFanOut(context, sink, ContainerOf(plan.Data), shardSize) : null,
                    Progress = progress,
                };
                var trained = await new TrainingEngine(new CliLogger<TrainingEngine>(context)).TrainAsync(plan, loaded, output, run, cancellationToken);
                return (loaded, trained);
            });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            if (File.Exists(Path.Combine(checkpoints, RunCheckpoint.FileName)))
            {
                context.Error($"Training was interrupted. The checkpoint in {checkpoints} is kept; continue with:");
                context.Error($"  train --output {Quote(output)} --resume");
            }
            else
            {
                context.Error("Training was interrupted before it started; nothing was written. Run the same command again.");
            }
            return ExitCodes.Cancelled;
        }
        using (result)
        {
            await TrainingOutput.WriteReportsAsync(result, dataset, output, context, cancellationToken);
            var manifest = result.Manifest;
            context.WriteLine(DescribePrecision(manifest));
            if (stored is not null)
            {
                // The run is complete: running the same command again starts a new one.
                await stored.Store.ClearAsync(cancellationToken);
            }
            if (result.Int8Refusal is { } refusal && plan.Precision.Precision == PrecisionChoice.Int8)
            {
                context.Error($"--precision int8: {refusal}. The fp32 model was written to {output}{(publish ? " and not published" : "")}; " +
                    $"to serve it: publish --model {Quote(output)} (or train with --precision fp32 or auto).");
                return ExitCodes.Failure;
            }
            if (publish)
            {
                var version = await context.Storage.ModelStore().PublishAsync(output, cancellationToken: cancellationToken);
                context.WriteLine($"Published version {version} (now current).");
            }
            if (result.Steps.Count > 0)
            {
                context.WriteLine($"Time: {StepTimes.Describe(result.Steps)}.");
            }
            if (result.MultiLabel is { } multiLabel)
            {
                foreach (var line in multiLabel.Describe())
                {
                    context.WriteLine(line);
                }
                context.WriteLine($"Model: {output} (multi-label, {manifest.Labels.Count} labels, each with its threshold); report: {Path.Combine(output, TrainCommand.ReportHtml)}");
                return ExitCodes.Ok;
            }
            var accuracy = manifest.Metrics?.Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "n/a";
            context.WriteLine($"Model: {output} ({manifest.Labels.Count} classes; validation accuracy {accuracy}); report: {Path.Combine(output, TrainCommand.ReportHtml)}");
        }
        return ExitCodes.Ok;
    }

    /// <summary>Copies the checkpoint folder to storage; a storage failure is reported and the run goes on (the local checkpoint is whole).</summary>
    private static void Keep(CheckpointStore store, string folder, IProgressSink sink)
    {
        try
        {
            store.Save(folder);
        }
        catch (Azure.RequestFailedException e)
        {
            sink.Line($"Warning: could not copy the checkpoint to {store.Location} ({CheckpointStore.Describe(e)}); the run goes on and the local checkpoint is whole, " +
                "but a lost machine would lose the epochs since the last copy.");
        }
    }

    internal static void PrepareOutput(string output, string checkpoints, bool resume)
    {
        if (File.Exists(output))
        {
            throw new UsageException($"--output {output} is a file; pass a folder.");
        }
        if (resume)
        {
            return; // the saved run was found in checkpoints/
        }
        if (Directory.Exists(output) && Directory.EnumerateFileSystemEntries(output).Any())
        {
            throw new UsageException($"--output {output} is not empty: choose an empty or new folder, or pass --resume to continue the run whose checkpoint is in {checkpoints}.");
        }
    }

    /// <summary>
    /// A local folder, a manifest file (its format stated in the output), else <c>container[/prefix]</c> in the
    /// configured storage (read blob by blob, nothing copied to disk).
    /// </summary>
    private static async Task<ImageFolderDataset> LoadDatasetAsync(TrainingPlan plan, CliContext context, IProgress<TrainingProgress> progress, CancellationToken cancellationToken)
    {
        var data = plan.Data;
        var featureCache = plan is HeadPlan { FeatureCache: true };
        var datasetOptions = TrainingEngine.DatasetOptionsFor(plan);
        if (plan.RewritePrefixes is { Count: > 0 } && !File.Exists(data))
        {
            throw new UsageException("--rewrite-prefix applies to a manifest file given as --data.");
        }
        if (featureCache && (Directory.Exists(data) || File.Exists(data)))
        {
            throw new UsageException($"--feature-cache needs --data container[/prefix] in the configured storage: features are matched by each blob's version, and {data} is a local {(Directory.Exists(data) ? "folder" : "file")}.");
        }
        if (Directory.Exists(data) && plan.MultiLabel == true)
        {
            // The multi-label folder layout: the images, with a labels.csv beside them (image,labels; ';' between labels).
            var labelsCsv = Path.Combine(data, MultiLabelCsv);
            data = File.Exists(labelsCsv)
                ? labelsCsv
                : throw new UsageException($"--multilabel with --data {data}: a multi-label folder holds its images and a {MultiLabelCsv} beside them (image,labels per line, ';' between labels); {data} has none.");
        }
        else if (Directory.Exists(data))
        {
            return await ImageFolderDataset.FromDirectoryAsync(data, datasetOptions, progress, cancellationToken);
        }
        if (File.Exists(data))
        {
            var dataset = await ImageFolderDataset.FromManifestAsync(data, ManifestSourcesFor(context, plan.RewritePrefixes), datasetOptions, progress, cancellationToken);
            var manifest = dataset.Manifest!;
            context.WriteLine($"Manifest {manifest.Path}: {manifest.FormatName}, {manifest.Rows} rows, SHA-256 {manifest.Sha256}");
            return dataset;
        }
        var slash = data.IndexOf('/', StringComparison.Ordinal);
        var containerName = ContainerOf(data);
        var prefix = slash < 0 ? "" : data[(slash + 1)..].TrimEnd('/');
        if (ModelCore.Storage.ContainerNames.Problem(containerName) is { } problem)
        {
            throw new UsageException($"--data {data} is neither an existing folder nor container[/prefix]: {problem}.");
        }
        var container = context.Storage.Container(containerName);
        if (!(await container.ExistsAsync(cancellationToken)).Value)
        {
            throw new InvalidOperationException($"--data: there is no folder {data} and no container '{containerName}' in the configured storage.");
        }
        if (plan.MultiLabel == true)
        {
            return await LoadMultiLabelBlobsAsync(context, container, prefix, datasetOptions, progress, cancellationToken);
        }
        // With stored features, an image is read only if its features are not stored (and then once, to compute them).
        return await ImageFolderDataset.FromBlobContainerAsync(container, prefix, datasetOptions with { CheckContent = !featureCache }, progress, cancellationToken);
    }

    /// <summary>
    /// <c>--multilabel --data container[/prefix]</c>: the multi-label layout in storage, as approved review labels write it
    /// (<see cref="TrainingImages.AddMultiLabelAsync"/>): the images with <c>labels.csv</c> beside them, whose names are blob
    /// names under the prefix. Read as a manifest (a copy of labels.csv in a temporary file), every image from the container.
    /// </summary>
    private static async Task<ImageFolderDataset> LoadMultiLabelBlobsAsync(CliContext context, Azure.Storage.Blobs.BlobContainerClient container, string prefix,
        DatasetOptions options, IProgress<TrainingProgress> progress, CancellationToken cancellationToken)
    {
        var root = prefix.Length == 0 ? "" : prefix + "/";
        var temp = Directory.CreateTempSubdirectory("multilabel-");
        try
        {
            var manifest = Path.Combine(temp.FullName, MultiLabelCsv);
            try
            {
                await container.GetBlobClient(root + MultiLabelCsv).DownloadToAsync(manifest, cancellationToken);
            }
            catch (Azure.RequestFailedException e) when (e.Status == 404)
            {
                throw new UsageException($"--multilabel with --data {container.Name}/{root}: multi-label data in storage is its images with a {MultiLabelCsv} beside them " +
                    $"(image,labels per line, ';' between labels; approved review labels of a multi-label model are written so); {container.Name}/{root} has none.");
            }
            var sources = new ManifestSources
            {
                Account = () => context.Storage.Service,
                TrainingContainer = container.Name,
                Rewrites = [new PrefixRewrite("", $"{container.Name}/{root}")], // every row's image is a blob under the prefix
            };
            var dataset = await ImageFolderDataset.FromManifestAsync(manifest, sources, options, progress, cancellationToken);
            var info = dataset.Manifest!;
            context.WriteLine($"Manifest {container.Name}/{root}{MultiLabelCsv}: {info.FormatName}, {info.Rows} rows, SHA-256 {info.Sha256}");
            return dataset;
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }

    /// <summary>The container of <c>--data container[/prefix]</c>.</summary>
    private static string ContainerOf(string data) => data.IndexOf('/', StringComparison.Ordinal) is var slash and >= 0 ? data[..slash] : data;

    /// <summary>Where a manifest's references point: the configured account (created on first use) and its training container.</summary>
    internal static ManifestSources ManifestSourcesFor(CliContext context, IReadOnlyList<string>? rewrites)
    {
        try
        {
            return new ManifestSources
            {
                Account = () => context.Storage.Service,
                TrainingContainer = context.Storage.TrainingContainer,
                Rewrites = [.. (rewrites ?? []).Select(PrefixRewrite.Parse)],
            };
        }
        catch (FormatException e)
        {
            throw new UsageException($"--rewrite-prefix: {e.Message}");
        }
    }

    /// <summary>One line: the served precision and, when an int8 graph was made, its check.</summary>
    internal static string DescribePrecision(ModelManifest manifest)
    {
        if (manifest.Quantization is not { } q)
        {
            return $"Precision: {Name(manifest.Precision)} (no int8 graph made).";
        }
        if (q.PerLabel is { } perLabel)
        {
            // A multi-label model's check: each label's decisions at its threshold, right and in agreement, under both precisions.
            var labels = string.Join("; ", perLabel.Select(l => string.Create(CultureInfo.InvariantCulture,
                $"{l.Label} {l.Int8Accuracy:P1} int8 vs {l.Fp32Accuracy:P1} fp32, agreement {l.Agreement:P1}")));
            var multi = string.Create(CultureInfo.InvariantCulture,
                $"int8 check per label on {q.ValidationImages} {q.Evidence ?? "validation"} images, decisions at each label's threshold: {labels}; " +
                $"at most {q.MaxAccuracyDropPoints:0.##} points below fp32 for every label; graph {q.Int8Bytes / 1048576.0:F1} MB vs {q.Fp32Bytes / 1048576.0:F1} MB");
            return manifest.Precision == ModelPrecision.Int8 ? $"Precision: int8 ({multi})." : $"Precision: fp32; the int8 graph was not kept ({multi}).";
        }
        // A head fitted on the int8 backbone's features was checked on the calibration images (out-of-fold), not on a stratified sample.
        var int8Features = manifest.Training?.Probe?.FeaturePrecision == "int8";
        var sample = q.SampledFrom is { } from && from > q.ValidationImages ? (int8Features ? $" (the calibration sample, of {from})" : $" (a stratified sample of {from})") : "";
        var check = string.Create(CultureInfo.InvariantCulture,
            $"int8 check on {q.ValidationImages} {q.Evidence ?? "validation"} images{sample}: " +
            $"accuracy {q.Int8Accuracy:P1} int8 vs {q.Fp32Accuracy:P1} fp32, {q.AccuracyDropPoints:F1} points{ServingGraph.Spread(q)}; top-1 agreement {q.Top1Agreement:P1}" +
            $"{(q.DisagreementHigh is { } high ? $" (disagreement at most {high:P1}, 95 %)" : "")}; graph {q.Int8Bytes / 1048576.0:F1} MB vs {q.Fp32Bytes / 1048576.0:F1} MB");
        return manifest.Precision == ModelPrecision.Int8
            ? $"Precision: int8, the head fitted on {(int8Features ? "the int8 backbone's" : "fp32")} features ({check}){WeightBitsNote(q.WeightBits, manifest.PortableGraph)}."
            : $"Precision: fp32; the int8 graph was not kept ({check}).";
    }

    /// <summary>Which CPUs the int8 graph's weights serve right on, and what the others serve (docs/architecture.md, "int8").</summary>
    internal static string WeightBitsNote(int? bits, PortableGraphSpec? portable) => (bits, portable) switch
    {
        (8, { Precision: ModelPrecision.Int8, Quantization: { } p }) => string.Create(CultureInfo.InvariantCulture,
            $"; 8-bit weights, served on CPUs with VNNI; CPUs without it serve the 7-bit graph {portable.File} (its check on {p.ValidationImages} of those images: accuracy {p.Int8Accuracy:P1} int8 vs {p.Fp32Accuracy:P1} fp32, {p.AccuracyDropPoints:F1} points{ServingGraph.Spread(p)}; top-1 agreement {p.Top1Agreement:P1})"),
        (8, { Precision: ModelPrecision.Fp32, Quantization: { } p }) => string.Create(CultureInfo.InvariantCulture,
            $"; 8-bit weights, served on CPUs with VNNI; CPUs without it serve the fp32 graph {portable.File}, the 7-bit graph not having passed its check ({p.AccuracyDropPoints:F1} points below fp32)"),
        (8, { Precision: ModelPrecision.Fp32 }) => $"; 8-bit weights, served on CPUs with VNNI; CPUs without it serve the fp32 graph {portable.File} (the head was fitted on the 8-bit graph's features)",
        (8, _) => "; 8-bit weights: serve it on CPUs with VNNI only (on AVX2 alone its integer sums can saturate); --int8-weight-bits 7 makes a graph for any x86 CPU, auto one for each",
        (7, _) => "; 7-bit weights: the same answers on any x86 CPU, with VNNI or AVX2 alone",
        _ => "",
    };

    internal static string Name(ModelPrecision precision) => precision.ToString().ToLowerInvariant();

    private static string Quote(string value) => value.Contains(' ', StringComparison.Ordinal) ? $"\"{value}\"" : value;
}
