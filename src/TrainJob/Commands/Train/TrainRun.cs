using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// One <c>train</c> run: prepares the output folder, loads the data set (a local folder or a blob
/// container/prefix, through the engine's <see cref="ImageFolderDataset"/>), runs
/// <see cref="TransferTrainer"/> with progress, then writes the model and reports
/// (<see cref="TrainingOutput"/>) and publishes with <c>--publish</c>. Ctrl-C keeps <c>checkpoints/</c>
/// and prints the one command that continues.
/// </summary>
internal static class TrainRun
{
    /// <param name="fanOutShardSize">With <see cref="SavedRun.FeatureCache"/>: have the Functions app compute the missing features first, in shards of this many images.</param>
    public static async Task<int> RunAsync(SavedRun run, string output, bool resume, bool publish, CliContext context, CancellationToken cancellationToken, int? fanOutShardSize = null)
    {
        var checkpoints = Path.Combine(output, TrainCommand.CheckpointsFolder);
        PrepareOutput(output, checkpoints, resume);
        var options = run.Options;
        options.Validate();
        var device = TransferTrainer.ResolveDevice(options.Device).type.ToString().ToLowerInvariant();
        if (!resume)
        {
            run.Write(checkpoints);
        }
        var unfreeze = options.Mode == TrainingMode.Finetune ? $", unfreeze {string.Join(",", options.UnfreezeStages)}" : "";
        context.WriteLine($"Training {TrainCommand.Name(options.Mode)}{unfreeze} on {run.Data} ({device}, backbone {options.Backbone}, up to {options.Epochs} epochs) into {output}");
        ImageFolderDataset dataset;
        TrainingResult result;
        try
        {
            (dataset, result) = await ProgressDisplay.RunAsync(context, async sink =>
            {
                var progress = new TrainingProgressView(sink, options.Epochs);
                var loaded = await LoadDatasetAsync(run, options, context, progress, cancellationToken);
                var trainer = new TransferTrainer(new CliLogger<TransferTrainer>(context))
                {
                    FeatureStore = run.FeatureCache ? context.Storage.Features() : null,
                    FeatureFanOut = fanOutShardSize is { } shardSize ? JobCommands.FeatureFanOut(context, sink, ContainerOf(run.Data), shardSize) : null,
                };
                var trained = await trainer.TrainAsync(loaded, options, progress, checkpoints, resume, cancellationToken);
                return (loaded, trained);
            });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            context.Error($"Training was interrupted. The checkpoint in {checkpoints} is kept; continue with:");
            context.Error($"  train --output {Quote(output)} --resume");
            return ExitCodes.Cancelled;
        }
        using (result)
        {
            var (manifest, refusal) = await TrainingOutput.SaveAsync(result, dataset, run, output, context, cancellationToken);
            context.WriteLine(DescribePrecision(manifest));
            if (refusal is not null && run.ServedPrecision == PrecisionChoice.Int8)
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
            var accuracy = manifest.Metrics?.Accuracy is { } a ? a.ToString("P1", CultureInfo.InvariantCulture) : "n/a";
            context.WriteLine($"Model: {output} ({manifest.Labels.Count} classes; validation accuracy {accuracy}); report: {Path.Combine(output, TrainCommand.ReportHtml)}");
        }
        return ExitCodes.Ok;
    }

    private static void PrepareOutput(string output, string checkpoints, bool resume)
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
        Directory.CreateDirectory(checkpoints);
    }

    /// <summary>
    /// A local folder, a manifest file (its format stated in the output), else <c>container[/prefix]</c> in the
    /// configured storage (read blob by blob, nothing copied to disk).
    /// </summary>
    private static async Task<ImageFolderDataset> LoadDatasetAsync(SavedRun run, TrainingOptions options, CliContext context, IProgress<TrainingProgress> progress, CancellationToken cancellationToken)
    {
        var data = run.Data;
        if (run.RewritePrefixes is { Count: > 0 } && !File.Exists(data))
        {
            throw new UsageException("--rewrite-prefix applies to a manifest file given as --data.");
        }
        if (run.FeatureCache && (Directory.Exists(data) || File.Exists(data)))
        {
            throw new UsageException($"--feature-cache needs --data container[/prefix] in the configured storage: features are matched by each blob's version, and {data} is a local {(Directory.Exists(data) ? "folder" : "file")}.");
        }
        if (Directory.Exists(data))
        {
            return await ImageFolderDataset.FromDirectoryAsync(data, options.ToDatasetOptions(), progress, cancellationToken);
        }
        if (File.Exists(data))
        {
            var dataset = await ImageFolderDataset.FromManifestAsync(data, ManifestSourcesFor(context, run.RewritePrefixes), options.ToDatasetOptions(), progress, cancellationToken);
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
        // With stored features, an image is read only if its features are not stored (and then once, to compute them).
        var datasetOptions = options.ToDatasetOptions() with { CheckContent = !run.FeatureCache };
        return await ImageFolderDataset.FromBlobContainerAsync(container, prefix, datasetOptions, progress, cancellationToken);
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
        var check = string.Create(CultureInfo.InvariantCulture,
            $"int8 check on {q.ValidationImages} validation images: accuracy {q.Int8Accuracy:P1} int8 vs {q.Fp32Accuracy:P1} fp32, top-1 agreement {q.Top1Agreement:P1}; graph {q.Int8Bytes / 1048576.0:F1} MB vs {q.Fp32Bytes / 1048576.0:F1} MB");
        return manifest.Precision == ModelPrecision.Int8 ? $"Precision: int8 ({check})." : $"Precision: fp32; the int8 graph was not kept ({check}).";
    }

    internal static string Name(ModelPrecision precision) => precision.ToString().ToLowerInvariant();

    private static string Quote(string value) => value.Contains(' ', StringComparison.Ordinal) ? $"\"{value}\"" : value;
}
