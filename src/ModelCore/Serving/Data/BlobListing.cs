using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Lists the blobs <c>&lt;prefix&gt;&lt;label&gt;/&lt;file&gt;</c> of a container (the <c>training</c>
/// container's layout; <c>&lt;prefix&gt;train/</c> and <c>&lt;prefix&gt;val/</c> fix the split as in a
/// folder). Nothing is downloaded here; each image reads its blob when checked.
/// </summary>
internal static class BlobListing
{
    public static async Task<DatasetListing> ListAsync(BlobContainerClient container, string? prefix, CancellationToken cancellationToken)
    {
        prefix = string.IsNullOrEmpty(prefix) ? "" : prefix.TrimEnd('/') + "/";
        var blobs = new List<(string Relative, long Bytes, string? Version)>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken).ConfigureAwait(false))
        {
            if (!blob.Name.EndsWith('/'))
            {
                blobs.Add((blob.Name[prefix.Length..], blob.Properties.ContentLength ?? 0, blob.Properties.ETag is { } etag ? PredictionBlobs.VersionOf(etag) : null));
            }
        }
        var warnings = new List<string>();
        var explicitSplit = blobs.Any(b => b.Relative.StartsWith(TrainingLayout.TrainFolder + "/", StringComparison.Ordinal))
            && blobs.Any(b => b.Relative.StartsWith(TrainingLayout.ValFolder + "/", StringComparison.Ordinal));
        var description = $"{container.Uri}/{prefix}";
        List<LabeledImage> List(string? split)
        {
            var result = new List<LabeledImage>();
            var start = split is null ? "" : split + "/";
            foreach (var (relative, bytes, version) in blobs.Where(b => b.Relative.StartsWith(start, StringComparison.Ordinal)))
            {
                var rest = relative[start.Length..];
                var slash = rest.IndexOf('/', StringComparison.Ordinal);
                if (slash < 0)
                {
                    if (split is not null || (rest != TrainingLayout.TrainFolder && rest != TrainingLayout.ValFolder))
                    {
                        warnings.Add($"{relative} is not inside a label folder and is ignored.");
                    }
                    continue;
                }
                var label = TrainingLayout.ValidateLabel(rest[..slash], $"{description}{relative}");
                if (rest[(slash + 1)..].Split('/').Any(s => s.StartsWith('.')))
                {
                    continue; // hidden file, as in a folder
                }
                result.Add(new LabeledImage(relative, label, bytes, Read(container.GetBlobClient(prefix + relative)))
                {
                    Identity = version is null ? null : new FeatureImage($"{container.Name}/{prefix}{relative}", version),
                });
            }
            return result;
        }
        var train = List(explicitSplit ? TrainingLayout.TrainFolder : null);
        var val = explicitSplit ? List(TrainingLayout.ValFolder) : null;
        return new DatasetListing(description, train, val, [], warnings);
    }

    /// <summary>Downloads a blob's content (a missing blob throws <see cref="Azure.RequestFailedException"/> with status 404).</summary>
    public static Func<CancellationToken, Task<byte[]>> Read(BlobClient blob) => async ct =>
    {
        var content = await blob.DownloadContentAsync(ct).ConfigureAwait(false);
        return content.Value.Content.ToArray();
    };
}
