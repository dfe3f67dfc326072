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
        string data, IReadOnlyList<string>? rewrites, IReadOnlyList<string> labels, List<string> ignored, List<Reports.SkippedImage> skipped, CliContext context, CancellationToken cancellationToken)
    {
        var known = labels.ToHashSet(StringComparer.Ordinal);
        var samples = new List<(ImageInput Input, string Actual)>();
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
        var manifest = await DataManifest.ReadAsync(data, TrainRun.ManifestSourcesFor(context, rewrites), cancellationToken: cancellationToken);
        var test = manifest.Images.Any(i => i.Split == ManifestSplit.Test);
        context.WriteLine($"Manifest {manifest.Info.Path}: {manifest.Info.FormatName}, {manifest.Info.Rows} rows, SHA-256 {manifest.Info.Sha256}" +
            (test ? "; measuring the rows marked TEST" : ""));
        skipped.AddRange(manifest.Skipped.Select(s => new Reports.SkippedImage(s.Source, $"{s.Code}: {s.Message}")));
        foreach (var image in manifest.Images.Where(i => !test || i.Split == ManifestSplit.Test).Select(i => i.Image))
        {
            if (known.Contains(image.Label))
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
