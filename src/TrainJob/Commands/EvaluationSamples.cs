using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// The labelled images <c>evaluate</c> measures a model on: a folder <c>&lt;folder&gt;/&lt;label&gt;/&lt;file&gt;</c>,
/// or a manifest (any format <c>train</c> reads). From a manifest with TEST rows (Vertex AI's ML_USE) only
/// those are measured, the held-out set; otherwise every row. Labels the model lacks are reported and left out.
/// </summary>
internal static class EvaluationSamples
{
    public static async Task<List<(ImageInput Input, string Actual)>> LoadAsync(
        string data, IReadOnlyList<string>? rewrites, IReadOnlyList<string> labels, List<string> ignored, List<Reports.SkippedImage> skipped, CliContext context, CancellationToken cancellationToken,
        bool multiLabel = false)
    {
        var known = labels.ToHashSet(StringComparer.Ordinal);
        var samples = new List<(ImageInput Input, string Actual)>();
        if (multiLabel && Directory.Exists(data))
        {
            // A multi-label model is measured on a manifest: the folder layout is its labels.csv.
            var labelsCsv = Path.Combine(data, TrainRun.MultiLabelCsv);
            data = File.Exists(labelsCsv)
                ? labelsCsv
                : throw new UsageException($"--data {data}: a multi-label model is measured on a manifest, or on a folder with a {TrainRun.MultiLabelCsv} beside its images; {data} has none.");
        }
        if (Directory.Exists(data))
        {
            if (rewrites is { Count: > 0 })
            {
                throw new UsageException("--rewrite-prefix applies to a manifest file given as --data.");
            }
            foreach (var labelFolder in Directory.GetDirectories(data).Order(StringComparer.Ordinal))
            {
                var label = Path.GetFileName(labelFolder);
                if (known.Contains(label))
                {
                    samples.AddRange(ImageFiles.InFolder(labelFolder).Select(f => (ImageInput.FromFile(Path.GetRelativePath(data, f), f), label)));
                }
                else
                {
                    ignored.Add(label);
                    context.Error($"warning: folder \"{label}\" is not a label of the model; its images are not evaluated.");
                }
            }
            return samples;
        }
        if (!File.Exists(data))
        {
            throw new UsageException($"--data {data} is neither a folder nor a manifest file.");
        }
        var manifest = await DataManifest.ReadAsync(data, TrainRun.ManifestSourcesFor(context, rewrites), multiLabel ? new DatasetOptions { MultiLabel = true } : null, cancellationToken);
        var test = manifest.Images.Any(i => i.Split == ManifestSplit.Test);
        context.WriteLine($"Manifest {manifest.Info.Path}: {manifest.Info.FormatName}, {manifest.Info.Rows} rows, SHA-256 {manifest.Info.Sha256}" +
            (test ? "; measuring the rows marked TEST" : ""));
        skipped.AddRange(manifest.Skipped.Select(s => new Reports.SkippedImage(s.Source, $"{s.Code}: {s.Message}")));
        foreach (var image in manifest.Images.Where(i => !test || i.Split == ManifestSplit.Test).Select(i => i.Image))
        {
            if (image.Labels is { } set)
            {
                // Multi-label: the image's labels the model has (';'-joined); one the model lacks is reported and left out of its set.
                foreach (var unknown in set.Where(l => !known.Contains(l) && !ignored.Contains(l)))
                {
                    ignored.Add(unknown);
                    context.Error($"warning: label \"{unknown}\" is not a label of the model; it is left out of the images' label sets.");
                }
                var read = image.ReadAsync;
                samples.Add((new ImageInput(image.Source, async ct => new MemoryStream(await read(ct), writable: false)), string.Join(DataManifest.MultiLabelSeparator, set.Where(known.Contains))));
            }
            else if (known.Contains(image.Label))
            {
                var read = image.ReadAsync;
                samples.Add((new ImageInput(image.Source, async ct => new MemoryStream(await read(ct), writable: false)), image.Label));
            }
            else if (!ignored.Contains(image.Label))
            {
                ignored.Add(image.Label);
                context.Error($"warning: label \"{image.Label}\" is not a label of the model; its images are not evaluated.");
            }
        }
        return samples;
    }
}
