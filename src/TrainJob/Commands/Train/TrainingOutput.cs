using System.Globalization;
using System.Text;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Reports;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Plans;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>Writes the reports of a run the engine packaged: report.html and report.json beside the model.</summary>
internal static class TrainingOutput
{
    public static async Task WriteReportsAsync(TrainingResult result, ImageFolderDataset dataset, string output, CliContext context, CancellationToken cancellationToken)
    {
        var manifest = result.Manifest;
        var images = dataset.Train.Concat(dataset.Validation).GroupBy(i => i.Source, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var errors = await ErrorGallery.BuildAsync(output, result.ValidationPredictions, images, cancellationToken);
        var labels = manifest.Labels;
        var report = new TrainingReport
        {
            Title = $"Training report: {string.Join(", ", labels.Take(8))}{(labels.Count > 8 ? ", ..." : "")}",
            Settings = DescribeSettings(result, dataset.Manifest),
            Labels = labels,
            Data = new DataCounts(dataset.TrainCounts, dataset.ValidationCounts),
            History = result.History,
            Validation = result.Validation,
            Skipped = [.. result.SkippedImages.Select(s => new Reports.SkippedImage(s.Source, $"{s.Code}: {s.Message}"))],
            BestEpoch = result.BestEpoch,
            AveragedEpochs = manifest.Training?.AveragedEpochs,
            ConfidenceThreshold = result.ConfidenceThreshold,
            ClassThresholdGoal = result.Plan.ClassThresholds,
            ClassThresholds = result.ClassThresholds,
            Notes = Notes(result),
            Warnings = Warnings(result, dataset),
            Errors = errors,
            Probe = manifest.Training?.Probe,
            Calibration = manifest.Training?.Calibration,
            Predictions = result.ValidationPredictions,
            Precision = manifest.Precision,
            Quantization = manifest.Quantization,
            PortableGraph = manifest.PortableGraph,
            Steps = result.Steps,
            MultiLabel = result.MultiLabel,
            LabelProbes = result.LabelProbes,
        };
        File.WriteAllText(Path.Combine(output, TrainCommand.ReportHtml), HtmlReport.Render(report), Encoding.UTF8);
        File.WriteAllText(Path.Combine(output, TrainCommand.ReportJson), ReportJsonWriter.Write(report), Encoding.UTF8);
        if (report.Skipped.Count > 0)
        {
            context.WriteLine($"{report.Skipped.Count} images were skipped (listed in the report).");
        }
    }

    /// <summary>What needs a look: the data's warnings, and an int8 graph that was refused.</summary>
    private static List<string> Warnings(TrainingResult result, ImageFolderDataset dataset)
    {
        var warnings = new List<string>(dataset.Warnings);
        if (result.Int8Refusal is { } refusal)
        {
            warnings.Add($"The int8 graph is not served: {refusal}. The model serves the fp32 graph.");
        }
        foreach (var kept in result.ClassThresholds?.Where(c => c.Own is null && c.Note is not null) ?? [])
        {
            warnings.Add($"Class {kept.Label} has no threshold of its own ({result.Plan.ClassThresholds}): {kept.Note}.");
        }
        return warnings;
    }

    /// <summary>How the run went, for information.</summary>
    private static List<string> Notes(TrainingResult result)
    {
        var notes = new List<string>();
        if (result.ResumedFromEpoch > 0)
        {
            notes.Add($"Resumed after epoch {result.ResumedFromEpoch}.");
        }
        if (result.StoppedEarly)
        {
            notes.Add($"Stopped early after epoch {result.History.Count}: no lower validation loss for {(result.Plan as EpochPlan)?.Patience} epochs.");
        }
        if (result.Manifest.Training?.KeptEpochReason is { } kept)
        {
            notes.Add(kept);
        }
        if (result.Manifest.Training?.Probe is { } probe)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"Linear probe: {probe.Folds}-fold cross-validation chose L2 {probe.Lambda:G3}; the head was then refitted on all {probe.Images} images ({probe.Rows} rows{(probe.FlipFeatures ? " with mirror images" : "")}), so the validation figures are out-of-fold (every image scored by a model that had not seen it). " +
                $"{(probe.ClassWeighted ? "Class-weighted loss (the largest class has over 3x the images of the smallest)." : "")}"));
            if (probe.FeatureChoices.Count > 1)
            {
                notes.Add(string.Create(CultureInfo.InvariantCulture,
                    $"Features: {probe.Features}{(probe.FlipFeatures ? " with mirror images" : "")}, chosen by out-of-fold log-loss among " +
                    $"{string.Join(", ", probe.FeatureChoices.Select(c => $"{c.Stages}{(c.Flipped ? " with mirror images" : "")} {c.Loss:F3} ({c.Accuracy:P1})"))}."));
            }
        }
        if (result.Manifest.Training?.Calibration is { } calibration)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture,
                $"Calibration on the {calibration.Images} {calibration.Evidence} images' predictions: {calibration.Decision ?? $"temperature {calibration.Temperature:F3}"}; expected calibration error {calibration.EceBefore:P1} before, {calibration.EceAfter:P1} after."));
        }
        if (result.FeatureParityRelativeDifference is { } parity)
        {
            notes.Add(string.Create(CultureInfo.InvariantCulture, $"Frozen features from the serving engine matched TorchSharp within {parity:E1} (relative)."));
        }
        return notes;
    }

    /// <summary>Every setting of the plan that ran (<see cref="PlanSettings.Describe"/>), the data's manifest when there is one, and the device.</summary>
    private static List<KeyValuePair<string, string>> DescribeSettings(TrainingResult result, DataManifestInfo? manifest)
    {
        var settings = PlanSettings.Describe(result.Plan).Select(s => new KeyValuePair<string, string>(s.Name, s.Value)).ToList();
        if (manifest is not null)
        {
            settings.AddRange(
            [
                new("manifest format", manifest.FormatName), new("manifest SHA-256", manifest.Sha256), new("manifest rows", manifest.Rows.ToString(CultureInfo.InvariantCulture)),
            ]);
        }
        settings.Add(new("device", result.Device));
        return settings;
    }
}
