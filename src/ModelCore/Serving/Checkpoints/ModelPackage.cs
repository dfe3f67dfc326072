using System.Security.Cryptography;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>Where a model's files are read from: a local folder, or blobs (see Storage).</summary>
public interface IModelFileSource
{
    /// <summary>A description for error messages (a folder path or a blob URI).</summary>
    string Description { get; }

    /// <summary>
    /// Opens a file of the model by its plain name, with its length as the source records it (the file system, the
    /// blob's properties), known before a byte is read; throws <see cref="FileNotFoundException"/> if it is absent.
    /// </summary>
    Task<OpenedModelFile> OpenReadAsync(string name, CancellationToken cancellationToken);
}

/// <summary>An opened model file and its length, so that a reader can refuse a size before it allocates anything.</summary>
public sealed record OpenedModelFile(Stream Content, long Length) : IAsyncDisposable
{
    public ValueTask DisposeAsync() => Content.DisposeAsync();
}

/// <summary>
/// A model folder on disk. Files are read only from the folder itself: names are plain (no separators, no dot segments),
/// and a file that is a symbolic link is read only when the link ends inside the folder, so a folder cannot bring in
/// a file from elsewhere on the machine (publishing it would upload that file).
/// </summary>
public sealed class FolderModelFiles(string folder) : IModelFileSource
{
    public string Description => folder;

    public Task<OpenedModelFile> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        if (!ModelManifest.IsPlainFileName(name))
        {
            throw new ModelFormatException($"{folder}: {name} is not a plain file name.");
        }
        var path = Path.Combine(folder, name);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{folder}: model file {name} is missing.", path);
        }
        if (File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target && !IsInFolder(target.FullName))
        {
            throw new ModelFormatException($"{folder}: {name} is a link to a file outside the model folder.");
        }
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        return Task.FromResult(new OpenedModelFile(stream, stream.Length));
    }

    private bool IsInFolder(string path)
    {
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder)) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(path).StartsWith(root, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal);
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

    private readonly byte[] manifestBytes;

    private ModelPackage(ModelManifest manifest, byte[] manifestBytes, IReadOnlyDictionary<string, byte[]> files, string source)
    {
        Manifest = manifest;
        this.manifestBytes = manifestBytes;
        this.files = files;
        Source = source;
    }

    public ModelManifest Manifest { get; }

    /// <summary>The manifest exactly as it was read (e.g. to compare it byte for byte with another copy).</summary>
    public ReadOnlyMemory<byte> ManifestBytes => manifestBytes;

    public string Source { get; }

    /// <summary>The names of the files that were loaded and verified (the manifest's, or those of the roles asked for).</summary>
    public IEnumerable<string> FileNames => files.Keys;

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

    /// <summary>
    /// The graph this CPU serves (<see cref="ServedGraph.Choose"/> with <see cref="Inference.CpuFeatures.ServingHasInt8DotProduct"/>);
    /// null for a package without an ONNX graph.
    /// </summary>
    public ServedGraph? ServedGraph => ServedOn(Manifest);

    /// <summary>The verified bytes of <see cref="ServedGraph"/> (loaded when the roles asked for include <see cref="ModelFileRoles.Onnx"/>).</summary>
    /// <exception cref="ModelFormatException">The model has no graph, or it was not loaded.</exception>
    public ReadOnlyMemory<byte> GetServedGraph() => ServedGraph is { } graph
        ? GetFileByName(graph.File.Name)
        : throw new ModelFormatException($"{Source}: the model has no {ModelFileRoles.Onnx} file.");

    private static ServedGraph? ServedOn(ModelManifest manifest) =>
        manifest.FindFile(ModelFileRoles.Onnx) is null ? null : ServedGraph.Choose(manifest, Inference.CpuFeatures.ServingHasInt8DotProduct);

    /// <summary>The files serving needs: the ONNX graph (the one this CPU serves, <see cref="ServedGraph"/>), the mean image and the out-of-distribution statistics (not the training weights).</summary>
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
    /// <paramref name="roles"/>, e.g. <see cref="ServingRoles"/>), verifying each size and hash. Sizes are checked before
    /// anything is allocated: a manifest over <see cref="ModelManifest.MaxBytes"/>, or a file whose stored length is not
    /// the manifest's size, is refused without reading it (a hostile size cannot make the reader allocate it).
    /// </summary>
    public static async Task<ModelPackage> LoadAsync(IModelFileSource source, IReadOnlyCollection<string>? roles, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(source);
        byte[] manifestBytes;
        await using (var file = await source.OpenReadAsync(ModelManifest.FileName, cancellationToken))
        {
            if (file.Length > ModelManifest.MaxBytes)
            {
                throw new ModelFormatException($"{source.Description}: {ModelManifest.FileName} is {file.Length} bytes; a manifest is at most {ModelManifest.MaxBytes}.");
            }
            (manifestBytes, _) = await ReadBoundedAsync(file.Content, file.Length, $"{source.Description}: {ModelManifest.FileName}", cancellationToken);
        }
        var manifest = ModelManifest.Parse(manifestBytes, source.Description);
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        // Asked for the graph (role onnx), a package loads the one this CPU serves (ServedGraph): a model's other graph is not read.
        var served = ServedOn(manifest);
        foreach (var entry in manifest.Files.Where(f => roles is null || (roles.Contains(f.Role) && f.Role is not (ModelFileRoles.Onnx or ModelFileRoles.PortableOnnx))
            || (roles.Contains(ModelFileRoles.Onnx) && ReferenceEquals(f, served?.File))))
        {
            byte[] content;
            string sha256;
            await using (var file = await source.OpenReadAsync(entry.Name, cancellationToken))
            {
                if (file.Length != entry.Bytes)
                {
                    throw new ModelIntegrityException($"{source.Description}: {entry.Name} is {file.Length} bytes, the manifest says {entry.Bytes}.");
                }
                (content, sha256) = await ReadBoundedAsync(file.Content, entry.Bytes, $"{source.Description}: {entry.Name}", cancellationToken);
            }
            Verify(entry, content.Length, sha256, source.Description);
            files[entry.Name] = content;
        }
        return new ModelPackage(manifest, manifestBytes, files, source.Description);
    }

    /// <summary>The largest model file a reader loads (into one array): a larger size, in a manifest or a blob's properties, is refused unread.</summary>
    public static long MaxFileBytes => Array.MaxLength;

    /// <summary>Refuses a file of more than <see cref="MaxFileBytes"/>, before anything of that size is allocated.</summary>
    /// <exception cref="ModelIntegrityException">The size is over the limit.</exception>
    public static void CheckFileSize(long bytes, string what)
    {
        if (bytes > MaxFileBytes)
        {
            throw new ModelIntegrityException($"{what}: {bytes} bytes is larger than a model file can be (at most {MaxFileBytes}).");
        }
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
    /// Reads a stream that should hold exactly <paramref name="expected"/> bytes (the source's length, already checked
    /// against the manifest) into one array of that size (no
    /// growing buffers: a model is read once, not three times over), hashing each chunk as it arrives (one pass:
    /// the SHA-256 is ready when the last byte is), and refusing a longer stream. Returns the content (shorter
    /// when the stream was; the caller's size check names both sizes) and its SHA-256 in lower-case hex.
    /// </summary>
    private static async Task<(byte[] Content, string Sha256)> ReadBoundedAsync(Stream stream, long expected, string what, CancellationToken cancellationToken)
    {
        CheckFileSize(expected, what);
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
