using System.Globalization;
using System.Text;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Reports;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>Writes what a run produced: the servable model (parity-checked ONNX included), report.html and report.json.</summary>
internal static class TrainingOutput
{
    /// <summary>Writes the model and reports; returns the manifest and, when an int8 graph was made but not kept, why.</summary>
    public static async Task<(ModelManifest Manifest, string? Int8Refusal)> SaveAsync(TrainingResult result, ImageFolderDataset dataset, SavedRun run, string output, CliContext context, CancellationToken cancellationToken)
    {
        var preprocessing = result.Manifest.Preprocessing;
        var export = OnnxExport.ExportVerified(result.Model, preprocessing.InputSize, result.VerificationInputs);
        var precision = new PrecisionOptions { Precision = run.ServedPrecision, Seed = run.Options.Seed, Quantizer = context.Int8Quantizer };
        var graph = precision.Precision == PrecisionChoice.Fp32
            ? new ServingGraph(export.Onnx, ModelPrecision.Fp32, null)
            : await ProgressDisplay.RunAsync(context, sink => ServingGraphs.CreateAsync(export.Onnx, result.Manifest.Labels, dataset, CheckImages(run, dataset), new ImagePreprocessor(preprocessing, result.MeanImage), precision,
                new TrainingProgressView(sink, run.Options.Epochs), cancellationToken));
        var manifest = ModelCheckpoint.SaveForServing(result.Model, result.Manifest, output, graph, result.MeanImage, result.OutOfDistribution);
        var labels = manifest.Labels;
        var report = new TrainingReport
        {
            Title = $"Training report: {string.Join(", ", labels.Take(8))}{(labels.Count > 8 ? ", ..." : "")}",
            Settings = DescribeSettings(run, dataset.Manifest, result.Device),
            Labels = labels,
            Data = new DataCounts(dataset.TrainCounts, dataset.ValidationCounts),
            History = result.History,
            Validation = result.Validation,
            Skipped = [.. result.SkippedImages.Select(s => new Reports.SkippedImage(s.Source, $"{s.Code}: {s.Message}"))],
            BestEpoch = result.BestEpoch,
            ConfidenceThreshold = result.ConfidenceThreshold,
            Notes = Notes(result, dataset, graph),
            Probe = result.Manifest.Training?.Probe,
            Predictions = result.ValidationPredictions,
            Precision = manifest.Precision,
            Quantization = manifest.Quantization,
        };
        await File.WriteAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml), HtmlReport.Render(report), Encoding.UTF8, CancellationToken.None);
        await File.WriteAllTextAsync(Path.Combine(output, TrainCommand.ReportJson), ReportJsonWriter.Write(report), Encoding.UTF8, CancellationToken.None);
        if (report.Skipped.Count > 0)
        {
            context.WriteLine($"{report.Skipped.Count} images were skipped (listed in the report).");
        }
        return (manifest, graph.Refusal);
    }

    /// <summary>The images the validation metrics come from: the validation split, or every image for head mode's out-of-fold probe.</summary>
    private static List<LabeledImage> CheckImages(SavedRun run, ImageFolderDataset dataset) =>
        TransferTrainer.UsesLinearProbe(run.Options) ? [.. dataset.Train, .. dataset.Validation] : [.. dataset.Validation];

    private static List<string> Notes(TrainingResult result, ImageFolderDataset dataset, ServingGraph graph)
    {
        var notes = new List<string>(dataset.Warnings);
        if (graph.Refusal is { } refusal)
        {
            notes.Add($"The int8 graph is not served: {refusal}. The model serves the fp32 graph.");
        }
        if (result.ResumedFromEpoch > 0)
        {
            notes.Add($"Resumed after epoch {result.ResumedFromEpoch}.");
        }
        if (result.StoppedEarly)
        {
            notes.Add(result.BestEpoch == 0 ? "Stopped early; the starting model (epoch 0) was kept: no epoch had a lower validation loss." : $"Stopped early; the best epoch ({result.BestEpoch}) was kept.");
        }
        if (result.Manifest.Training?.Probe is { } probe)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"Linear probe: {probe.Folds}-fold cross-validation chose L2 {probe.Lambda:G3}; the head was then refitted on all {probe.Images} images ({probe.Rows} rows{(probe.FlipFeatures ? " with mirror images" : "")}), so the validation figures are out-of-fold (every image scored by a model that had not seen it). " +
                $"Temperature {probe.Temperature:F3}: expected calibration error {probe.EceBefore:P1} before, {probe.EceAfter:P1} after.{(probe.ClassWeighted ? " Class-weighted loss (the largest class has over 3x the images of the smallest)." : "")}"));
        }
        if (result.FeatureParityRelativeDifference is { } parity)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"Frozen features from the serving engine matched TorchSharp within {parity:E1} (relative)."));
        }
        return notes;
    }

    private static List<KeyValuePair<string, string>> DescribeSettings(SavedRun run, DataManifestInfo? manifest, string device)
    {
        var o = run.Options;
        List<KeyValuePair<string, string>> data = manifest is null
            ? [new("data", run.Data)]
            : [new("data (manifest)", manifest.Path), new("manifest format", manifest.FormatName), new("manifest SHA-256", manifest.Sha256), new("manifest rows", manifest.Rows.ToString(CultureInfo.InvariantCulture))];
        if (run.RewritePrefixes is { Count: > 0 } rewrites)
        {
            data.Add(new("rewrite prefix", string.Join(" ", rewrites)));
        }
        if (TransferTrainer.UsesLinearProbe(o))
        {
            return
            [
                .. data,
                new("mode", "head (linear probe: L-BFGS logistic regression, L2 by cross-validation, temperature scaling)"),
                new("cross-validation folds", o.ProbeFolds.ToString(CultureInfo.InvariantCulture)),
                new("pooled stages", o.PooledStages.ToString(CultureInfo.InvariantCulture)),
                new("mirror images", o.FlipFeatures ? "yes" : "no"),
                new("seed", o.Seed.ToString(CultureInfo.InvariantCulture)),
                new("device", device),
                new("backbone", o.Backbone),
                new("precision", TrainCommand.Name(run.ServedPrecision)),
            ];
        }
        return
        [
            .. data,
            new("mode", TrainCommand.Name(o.Mode)),
            new("unfreeze", o.Mode == TrainingMode.Finetune ? string.Join(",", o.UnfreezeStages) : "-"),
            new("epochs", o.Epochs.ToString(CultureInfo.InvariantCulture)),
            new("batch size", o.BatchSize.ToString(CultureInfo.InvariantCulture)),
            new("learning rate", o.LearningRate.ToString(CultureInfo.InvariantCulture)),
            new("backbone learning rate factor", o.Mode == TrainingMode.Head ? "-" : o.BackboneLrFactor.ToString(CultureInfo.InvariantCulture)),
            new("pooled stages", o.PooledStages.ToString(CultureInfo.InvariantCulture)),
            new("head start", TransferTrainer.UsesProbeInitialisation(o) ? "linear probe on the training split (LP-FT)" : "random"),
            new("label smoothing", o.Mode == TrainingMode.Head ? "-" : o.LabelSmoothing.ToString(CultureInfo.InvariantCulture)),
            new("cached prefix views", o.Mode == TrainingMode.Finetune && o.PrefixViews > 0 ? o.PrefixViews.ToString(CultureInfo.InvariantCulture) : "-"),
            new("mirror augmentation", o.Mode != TrainingMode.Head && o.MirrorAugmentation ? "yes" : "no"),
            new("seed", o.Seed.ToString(CultureInfo.InvariantCulture)),
            new("validation split", o.ValSplit.ToString(CultureInfo.InvariantCulture)),
            new("device", device),
            new("backbone", o.Backbone),
            new("precision", TrainCommand.Name(run.ServedPrecision)),
        ];
    }
}
