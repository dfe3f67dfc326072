using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>An image whose features a file holds: its blob (<c>&lt;container&gt;/&lt;name&gt;</c>) and the version (ETag) they were computed from.</summary>
public sealed record FeatureImage(string Name, string Version);

/// <summary>What reading a key's files found.</summary>
/// <param name="Files">Feature files read.</param>
/// <param name="Found">Images whose stored version is the wanted one (each counted once).</param>
public sealed record FeatureReadSummary(int Files, int Found);

/// <summary>
/// Head-mode features in blob storage (the <c>features</c> container): <c>&lt;key&gt;/&lt;file&gt;.safetensors</c>,
/// each file one F32 tensor <c>features</c> [images, features] with the images (blob name and version) in its
/// metadata. The key names the extractor (backbone weights, pooled stages, preprocessing), so features of another
/// backbone are never mixed in; the version names the image's content, so a changed image is computed again and
/// its old row is simply never matched. Files are only added (a run or a shard writes its own), never rewritten in
/// place, so readers and writers need no locks; the same image in two files holds the same features.
/// </summary>
public sealed class FeatureStore(BlobContainerClient container)
{
    public const string TensorName = "features";
    public const string FormatName = "serverlessclassifier-features/1";

    /// <summary>Most images per file a training run writes (512 features: 8 MB).</summary>
    public const int RowsPerFile = 4096;

    public BlobContainerClient Container { get; } = container;

    /// <summary>Key: lower-case hex, 16..64 characters (a hash), so it never reaches outside its folder.</summary>
    public static bool IsValidKey(string? key) => key is { Length: >= 16 and <= 64 } && key.All(char.IsAsciiHexDigitLower);

    /// <summary>
    /// Reads every file of <paramref name="key"/> and hands each row whose image <paramref name="want"/> maps
    /// (by name and version) to a destination of <paramref name="numFeatures"/> floats to it, once per image.
    /// </summary>
    /// <exception cref="InvalidDataException">A file is not a feature file of this width.</exception>
    public async Task<FeatureReadSummary> ReadAsync(string key, int numFeatures, Func<FeatureImage, Memory<float>?> want, CancellationToken cancellationToken = default)
    {
        CheckKey(key);
        ArgumentNullException.ThrowIfNull(want);
        var files = 0;
        var found = new HashSet<string>(StringComparer.Ordinal);
        if (!(await Container.ExistsAsync(cancellationToken).ConfigureAwait(false)).Value)
        {
            return new FeatureReadSummary(0, 0);
        }
        await foreach (var blob in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, key + "/", cancellationToken).ConfigureAwait(false))
        {
            if (!blob.Name.EndsWith(".safetensors", StringComparison.Ordinal))
            {
                continue;
            }
            var content = await Container.GetBlobClient(blob.Name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            var (images, tensor) = Parse(content.Value.Content.ToMemory().Span, $"Feature file {blob.Name}", numFeatures);
            files++;
            for (var i = 0; i < images.Count; i++)
            {
                if (!found.Contains(images[i].Name) && want(images[i]) is { } destination)
                {
                    if (destination.Length != numFeatures)
                    {
                        // (Memory<float>)null is an empty Memory, not "not wanted": a conditional `? row : null` makes one.
                        throw new ArgumentException($"The destination for {images[i].Name} holds {destination.Length} floats, not {numFeatures}.", nameof(want));
                    }
                    tensor.Values.AsSpan(i * numFeatures, numFeatures).CopyTo(destination.Span);
                    found.Add(images[i].Name);
                }
            }
        }
        return new FeatureReadSummary(files, found.Count);
    }

    /// <summary>Writes one file <c>&lt;key&gt;/&lt;file&gt;.safetensors</c> of the images' features (row i is image i), replacing a file of that name.</summary>
    public async Task WriteAsync(string key, string file, IReadOnlyList<FeatureImage> images, ReadOnlyMemory<float> features, int numFeatures, CancellationToken cancellationToken = default)
    {
        CheckKey(key);
        ArgumentNullException.ThrowIfNull(images);
        if (file.Length is 0 or > 200 || !file.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
        {
            throw new ArgumentException($"'{file}' is not a feature file name (letters, digits, '-' and '_').", nameof(file));
        }
        if (features.Length != (long)images.Count * numFeatures)
        {
            throw new ArgumentException($"{features.Length} features are not {images.Count} images of {numFeatures}.", nameof(features));
        }
        var metadata = new Dictionary<string, string>
        {
            ["format"] = FormatName,
            ["key"] = key,
            ["images"] = JsonSerializer.Serialize(images.Select(i => new[] { i.Name, i.Version })),
        };
        var bytes = SafeTensorsFile.Write(TensorName, features.Span, [images.Count, numFeatures], metadata);
        await Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await Container.GetBlobClient($"{key}/{file}.safetensors").UploadAsync(BinaryData.FromBytes(bytes), overwrite: true, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The images and features of a feature file's bytes.</summary>
    /// <exception cref="InvalidDataException">Not a feature file, or its features are not <paramref name="numFeatures"/> wide.</exception>
    public static (IReadOnlyList<FeatureImage> Images, SafeTensor Tensor) Parse(ReadOnlySpan<byte> file, string source, int numFeatures)
    {
        var tensor = SafeTensorsFile.Read(file, TensorName, source);
        if (!tensor.Metadata.TryGetValue("format", out var format) || format != FormatName)
        {
            throw new InvalidDataException($"{source} is not a feature file (metadata format is not {FormatName}).");
        }
        List<FeatureImage> images;
        try
        {
            images = [.. (JsonSerializer.Deserialize<string[][]>(tensor.Metadata.GetValueOrDefault("images") ?? "null") ?? throw new JsonException("no images"))
                .Select(pair => pair is [{ } name, { } version] ? new FeatureImage(name, version) : throw new JsonException("an entry is not [name, version]"))];
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: the images in its metadata are not a list of [name, version] ({e.Message}).", e);
        }
        if (tensor.Shape is not [var rows, var width] || rows != images.Count || width != numFeatures)
        {
            throw new InvalidDataException(
                $"{source}: its features are [{string.Join(", ", tensor.Shape)}], not [{images.Count}, {numFeatures}] ({images.Count} images of the extractor's {numFeatures} features).");
        }
        return (images, tensor);
    }

    private static void CheckKey(string key)
    {
        if (!IsValidKey(key))
        {
            throw new ArgumentException($"'{key}' is not a feature key (16..64 lower-case hex digits).", nameof(key));
        }
    }
}
