using Azure;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>One input's outcome: a classification, or a typed error code and message.</summary>
public sealed record FileOutcome(string File, Classification? Classification, string? ErrorCode, string? ErrorMessage)
{
    public bool Ok => Classification is not null;
}

/// <summary>Finding image files and classifying them in batches, one bad file never stopping the rest.</summary>
public static class ImageFiles
{
    /// <summary>Extensions picked up when a folder is given (explicitly named files are always tried).</summary>
    public static readonly IReadOnlySet<string> Extensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff",
    };

    public const string NotFound = "NotFound";
    public const string Unreadable = "Unreadable";

    /// <summary>The image files under a folder (recursively), in a stable order.</summary>
    public static IEnumerable<string> InFolder(string folder) =>
        Directory.EnumerateFiles(folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f)))
            .Order(StringComparer.Ordinal);

    /// <summary>Classifies files in batches; reports each outcome (in input order) as soon as its batch is done.</summary>
    public static Task ClassifyAsync(ClassificationPipeline pipeline, IReadOnlyList<string> files, int batchSize, int top, Action<FileOutcome> onOutcome, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(files);
        return ClassifyAsync(pipeline, [.. files.Select(ImageInput.FromFile)], batchSize, top, onOutcome, cancellationToken);
    }

    /// <summary>
    /// Classifies images (files or blobs) in batches; reports each outcome (in input order, by <see cref="ImageInput.Name"/>) as soon as its batch is done.
    /// With <paramref name="onMap"/>, each image is classified on its own with its activation map (<see cref="ClassificationPipeline.Explain"/>),
    /// which is handed to it (null for a model without maps) before the outcome.
    /// </summary>
    public static async Task ClassifyAsync(ClassificationPipeline pipeline, IReadOnlyList<ImageInput> inputs, int batchSize, int top, Action<FileOutcome> onOutcome, CancellationToken cancellationToken,
        Action<string, ActivationMap?, PreparedImage>? onMap = null)
    {
        ArgumentNullException.ThrowIfNull(pipeline);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(onOutcome);
        for (var start = 0; start < inputs.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var chunk = inputs.Skip(start).Take(batchSize).ToList();
            var outcomes = new FileOutcome?[chunk.Count];
            var prepared = new List<(int Index, PreparedImage Image)>();
            for (var i = 0; i < chunk.Count; i++)
            {
                var file = chunk[i].Name;
                try
                {
                    ReadOnlyMemory<byte> bytes;
                    await using (var stream = await chunk[i].OpenAsync(cancellationToken))
                    {
                        bytes = await pipeline.Decoder.ReadAllBytesAsync(stream, cancellationToken);
                    }
                    prepared.Add((i, pipeline.Prepare(bytes)));
                }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException || e is RequestFailedException { Status: 404 })
                {
                    outcomes[i] = new FileOutcome(file, null, NotFound, "no such file");
                }
                catch (ImageRejectedException e)
                {
                    outcomes[i] = new FileOutcome(file, null, e.Code.ToString(), e.Message);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    outcomes[i] = new FileOutcome(file, null, Unreadable, e.Message);
                }
            }
            var results = onMap is null
                ? pipeline.ClassifyPrepared([.. prepared.Select(p => p.Image)], top)
                : [.. prepared.Select(p =>
                {
                    var (classification, map) = pipeline.Explain(p.Image, top);
                    onMap(chunk[p.Index].Name, map, p.Image);
                    return classification;
                })];
            for (var j = 0; j < prepared.Count; j++)
            {
                outcomes[prepared[j].Index] = new FileOutcome(chunk[prepared[j].Index].Name, results[j], null, null);
            }
            foreach (var outcome in outcomes)
            {
                onOutcome(outcome!);
            }
        }
    }
}
