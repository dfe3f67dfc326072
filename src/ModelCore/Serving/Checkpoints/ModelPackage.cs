using System.Security.Cryptography;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>Where a model's files are read from: a local folder, or blobs (see Storage).</summary>
public interface IModelFileSource
{
    /// <summary>A description for error messages (a folder path or a blob URI).</summary>
    string Description { get; }

    /// <summary>Opens a file of the model by its plain name; throws <see cref="FileNotFoundException"/> if it is absent.</summary>
    Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken);
}

/// <summary>A model folder on disk.</summary>
public sealed class FolderModelFiles(string folder) : IModelFileSource
{
    public string Description => folder;

    public Task<Stream> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        if (!ModelManifest.IsPlainFileName(name))
        {
            throw new ModelFormatException($"{folder}: {name} is not a plain file name.");
        }
        var path = Path.Combine(folder, name);
        return File.Exists(path)
            ? Task.FromResult<Stream>(File.OpenRead(path))
            : throw new FileNotFoundException($"{folder}: model file {name} is missing.", path);
    }
}

/// <summary>
/// A model whose files have all been read and checked against the manifest's sizes and SHA-256
/// hashes. Nothing downstream (TorchSharp loading, ONNX Runtime sessions) sees a byte that was not
/// verified: a model that fails the check is refused whole.
/// </summary>
public sealed class ModelPackage
{
    private readonly IReadOnlyDictionary<string, byte[]> files;

    private ModelPackage(ModelManifest manifest, IReadOnlyDictionary<string, byte[]> files, string source)
    {
        Manifest = manifest;
        this.files = files;
        Source = source;
    }

    public ModelManifest Manifest { get; }

    public string Source { get; }

    /// <summary>Total bytes of the verified files.</summary>
    public long TotalBytes => files.Values.Sum(f => (long)f.Length);

    /// <summary>The verified content of the file with this role, or null when the model has none.</summary>
    public ReadOnlyMemory<byte>? FindFile(string role) =>
        Manifest.FindFile(role) is { } entry && files.TryGetValue(entry.Name, out var content) ? content : null;

    public ReadOnlyMemory<byte> GetFile(string role) =>
        FindFile(role) ?? throw new ModelFormatException($"{Source}: the model has no {role} file (or it was not loaded).");

    /// <summary>The verified content of a file by name (e.g. the preprocessing's mean image).</summary>
    public ReadOnlyMemory<byte> GetFileByName(string name) =>
        files.TryGetValue(name, out var content) ? content : throw new ModelFormatException($"{Source}: the model has no file {name}.");

    /// <summary>The files serving needs: the ONNX graph, the mean image and the out-of-distribution statistics (not the training weights).</summary>
    public static IReadOnlyList<string> ServingRoles { get; } = [ModelFileRoles.Onnx, ModelFileRoles.MeanImage, ModelFileRoles.OutOfDistribution];

    /// <summary>The out-of-distribution statistics the manifest describes; null for a model without them.</summary>
    public Ood.FeatureStatistics? ReadOutOfDistribution() => Manifest.OutOfDistribution is { } spec
        ? Ood.FeatureStatistics.Read(GetFileByName(spec.File).Span, spec, Manifest.Labels.Count, Source)
        : null;

    /// <summary>The mean image the preprocessing names, as floats; null when it uses mean/std.</summary>
    public float[]? ReadMeanImage()
    {
        if (Manifest.Preprocessing.MeanImageFile is not { } name)
        {
            return null;
        }
        using var stream = new MemoryStream(GetFileByName(name).ToArray(), writable: false);
        try
        {
            return MeanImage.Read(stream, Manifest.Preprocessing.InputSize);
        }
        catch (Exception e) when (e is InvalidDataException or EndOfStreamException)
        {
            throw new ModelFormatException($"{Source}: {name}: {e.Message}.", e);
        }
    }

    public static Task<ModelPackage> LoadAsync(string folder, CancellationToken cancellationToken = default) =>
        LoadAsync(new FolderModelFiles(folder), roles: null, cancellationToken);

    public static Task<ModelPackage> LoadAsync(IModelFileSource source, CancellationToken cancellationToken = default) =>
        LoadAsync(source, roles: null, cancellationToken);

    /// <summary>
    /// Reads the manifest, then the files it lists (all of them, or only those whose role is in
    /// <paramref name="roles"/>, e.g. <see cref="ServingRoles"/>), verifying each size and hash.
    /// </summary>
    public static async Task<ModelPackage> LoadAsync(IModelFileSource source, IReadOnlyCollection<string>? roles, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        byte[] manifestBytes;
        await using (var stream = await source.OpenReadAsync(ModelManifest.FileName, cancellationToken))
        {
            (manifestBytes, _) = await ReadBoundedAsync(stream, 1024 * 1024, $"{source.Description}: {ModelManifest.FileName}", cancellationToken);
        }
        var manifest = ModelManifest.Parse(manifestBytes, source.Description);
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach (var entry in manifest.Files.Where(f => roles is null || roles.Contains(f.Role)))
        {
            byte[] content;
            string sha256;
            await using (var stream = await source.OpenReadAsync(entry.Name, cancellationToken))
            {
                (content, sha256) = await ReadBoundedAsync(stream, entry.Bytes, $"{source.Description}: {entry.Name}", cancellationToken);
            }
            Verify(entry, content.Length, sha256, source.Description);
            files[entry.Name] = content;
        }
        return new ModelPackage(manifest, files, source.Description);
    }

    /// <summary>Refuses content whose size or SHA-256 differs from the manifest's entry.</summary>
    public static void Verify(ModelFileEntry entry, ReadOnlySpan<byte> content, string source) =>
        Verify(entry, content.Length, Convert.ToHexStringLower(SHA256.HashData(content)), source);

    private static void Verify(ModelFileEntry entry, long length, string actual, string source)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (length != entry.Bytes)
        {
            throw new ModelIntegrityException($"{source}: {entry.Name} is {length} bytes, the manifest says {entry.Bytes}.");
        }
        if (!string.Equals(actual, entry.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelIntegrityException($"{source}: {entry.Name} has SHA-256 {actual}, the manifest says {entry.Sha256}.");
        }
    }

    /// <summary>
    /// Reads a stream that should hold exactly <paramref name="expected"/> bytes into one array of that size (no
    /// growing buffers: a model is read once, not three times over), hashing each chunk as it arrives (one pass:
    /// the SHA-256 is ready when the last byte is), and refusing a longer stream. Returns the content (shorter
    /// when the stream was; the caller's size check names both sizes) and its SHA-256 in lower-case hex.
    /// </summary>
    private static async Task<(byte[] Content, string Sha256)> ReadBoundedAsync(Stream stream, long expected, string what, CancellationToken cancellationToken)
    {
        if (expected > Array.MaxLength)
        {
            throw new ModelIntegrityException($"{what}: {expected} bytes is larger than a model file can be.");
        }
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[expected];
        var filled = 0;
        int read;
        while (filled < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken)) > 0)
        {
            hash.AppendData(buffer, filled, read);
            filled += read;
        }
        if (filled < buffer.Length)
        {
            return (buffer[..filled], Convert.ToHexStringLower(hash.GetHashAndReset()));
        }
        var probe = new byte[1];
        if (await stream.ReadAsync(probe, cancellationToken) > 0)
        {
            throw new ModelIntegrityException($"{what} is longer than the {expected} bytes expected.");
        }
        return (buffer, Convert.ToHexStringLower(hash.GetHashAndReset()));
    }
}

/// <summary>A model file whose content does not match its manifest entry (size or SHA-256).</summary>
public sealed class ModelIntegrityException(string message) : Exception(message);
