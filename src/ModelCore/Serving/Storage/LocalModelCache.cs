using System.Security.Cryptography;
using System.Text;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>What <see cref="LocalModelCache"/> did for the graph of a load.</summary>
public enum CacheOutcome
{
    /// <summary>The graph was not cached: it was downloaded, checked and stored.</summary>
    Downloaded,

    /// <summary>The cached graph matched the manifest's size and SHA-256: nothing was downloaded.</summary>
    Reused,

    /// <summary>The cached graph did not match the manifest (a damaged file): it was deleted and downloaded again.</summary>
    Replaced,
}

/// <summary>The cache's folder could not be used (the local disk failed, is full or is not writable); the store itself may be fine.</summary>
public sealed class LocalModelCacheException(string message, Exception inner) : IOException(message, inner);

/// <summary>A model loaded through the cache: its verified small files in memory, and the path of its verified ONNX graph on local disk.</summary>
public sealed record CachedModel(ModelPackage Package, string OnnxPath, CacheOutcome Outcome);

/// <summary>
/// The instance's local copy of served ONNX graphs, so that a restarted process reads its model from local disk instead of
/// the store, and ONNX Runtime creates its session from a file (no copy of the graph in the managed heap: see
/// docs/benchmarks.md, "Serving memory with two ResNet-18 models loaded").
/// <list type="bullet">
/// <item>An entry is keyed by the model's name, its version and its graph's SHA-256 (<c>&lt;name&gt;-&lt;version&gt;-&lt;sha256
/// prefix&gt;</c>): a version republished with other content gets another entry.</item>
/// <item>Nothing unverified is served: the manifest always comes from the store; a cached graph is used only when its size and
/// SHA-256 match the manifest's (checked on every load); one that does not is deleted and downloaded again
/// (<see cref="CacheOutcome.Replaced"/>).</item>
/// <item>Nothing half-written is served: a download goes to a temporary file in the entry, is checked, then renamed over the
/// final name (atomic on one file system); a process that dies mid-download leaves only a temporary file, removed later.</item>
/// <item>Bounded: after each load the least recently used entries are deleted while the cache holds more than its budget,
/// except the one just loaded and any used within <see cref="RecentUse"/> (another model of this process may be loading it).</item>
/// </list>
/// The folder is private to the app (created with owner-only permissions where the system has them).
/// </summary>
public sealed class LocalModelCache
{
    /// <summary>Entries used within this time are never deleted to meet the budget; temporary files older than it are.</summary>
    public static readonly TimeSpan RecentUse = TimeSpan.FromMinutes(10);

    private const string TemporarySuffix = ".partial";

    private readonly string root;
    private readonly long maxBytes;
    private readonly TimeProvider time;

    public LocalModelCache(string root, long maxBytes, TimeProvider? time = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(root);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        this.root = Path.GetFullPath(root);
        this.maxBytes = maxBytes;
        this.time = time ?? TimeProvider.System;
    }

    /// <summary>The default folder: <c>serverless-classifier-models</c> under the system's temporary folder (local disk on a Functions instance).</summary>
    public static string DefaultRoot => Path.Combine(Path.GetTempPath(), "serverless-classifier-models");

    public string Root => root;

    /// <summary>
    /// Reads the manifest and the small files of <paramref name="roles"/> from <paramref name="source"/> (verified, in memory),
    /// and the ONNX graph from the cache, downloading it first when it is missing or does not match the manifest.
    /// </summary>
    /// <param name="source">The version's files in the store.</param>
    /// <param name="model">The model's name.</param>
    /// <param name="version">The version's id.</param>
    /// <param name="roles">The roles to load; must include <see cref="ModelFileRoles.Onnx"/>.</param>
    /// <param name="cancellationToken">Cancels the load.</param>
    public async Task<CachedModel> LoadAsync(IModelFileSource source, string model, string version, IReadOnlyCollection<string> roles, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(roles);
        var package = await ModelPackage.LoadAsync(source, [.. roles.Where(r => r != ModelFileRoles.Onnx)], cancellationToken).ConfigureAwait(false);
        // The graph this CPU serves: a model's other graph is neither downloaded nor kept.
        var onnx = package.ServedGraph?.File
            ?? throw new ModelFormatException($"{source.Description}: the model has no {ModelFileRoles.Onnx} file.");
        if (onnx.Sha256.Length != 64 || !onnx.Sha256.All(char.IsAsciiHexDigit))
        {
            throw new ModelFormatException($"{source.Description}: {onnx.Name} has no valid SHA-256 in the manifest.");
        }
        var folder = Path.Combine(root, EntryName(model, version, onnx.Sha256));
        var path = Path.Combine(folder, onnx.Name);
        var outcome = CacheOutcome.Downloaded;
        if (File.Exists(path))
        {
            if (await MatchesAsync(path, onnx, cancellationToken).ConfigureAwait(false))
            {
                outcome = CacheOutcome.Reused;
            }
            else
            {
                outcome = CacheOutcome.Replaced;
                Disk(() => File.Delete(path));
            }
        }
        if (outcome != CacheOutcome.Reused)
        {
            await DownloadAsync(source, onnx, folder, path, cancellationToken).ConfigureAwait(false);
        }
        KeepServingFiles(folder, package);
        Disk(() => Directory.SetLastWriteTimeUtc(folder, time.GetUtcNow().UtcDateTime));
        Prune(keep: folder);
        return new CachedModel(package, path, outcome);
    }

    /// <summary>
    /// Records that <paramref name="cached"/> went live as <paramref name="model"/>'s current version on this instance, so
    /// that the next process can start it from local disk before the store says which version is current
    /// (<see cref="CachedStart{T}"/>). A disk that cannot be written only loses that head start.
    /// </summary>
    public void RememberServed(string model, string version, CachedModel cached)
    {
        ArgumentNullException.ThrowIfNull(cached);
        var entry = Path.GetFileName(Path.GetDirectoryName(cached.OnnxPath))!;
        var record = $"{version}\n{entry}\n";
        var path = ServedRecordPath(model);
        var temporary = $"{path}.{Guid.NewGuid():N}{TemporarySuffix}";
        try
        {
            if (File.Exists(path) && File.ReadAllText(path) == record)
            {
                return;
            }
            File.WriteAllText(temporary, record);
            File.Move(temporary, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The next process starts the usual way.
        }
        finally
        {
            try
            {
                File.Delete(temporary); // nothing when it was renamed
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // A leftover temporary file is harmless: the record is read by its own name only.
            }
        }
    }

    /// <summary>
    /// The version <see cref="RememberServed"/> last recorded for <paramref name="model"/> and its entry's folder, or null
    /// when there is none (or the record is not one this cache wrote). Reads one small local file: no request, no hashing.
    /// </summary>
    public (string Version, string Folder)? FindServed(string model)
    {
        try
        {
            var path = ServedRecordPath(model);
            if (!File.Exists(path))
            {
                return null;
            }
            var lines = File.ReadAllText(path).Split('\n');
            if (lines.Length < 2 || !ModelStore.IsValidVersion(lines[0]) || !ModelManifest.IsPlainFileName(lines[1]) || lines[1].StartsWith('.'))
            {
                return null;
            }
            var folder = Path.Combine(root, lines[1]);
            return Directory.Exists(folder) ? (lines[0], folder) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// A version from its entry's folder alone, with no request to the store: the manifest this cache kept, the small files of
    /// <paramref name="roles"/> verified against it, and the graph's size and SHA-256 checked against it. Not yet confirmed by
    /// the store: <see cref="CachedStart{T}"/> serves it only after the store's manifest of that version is found to be the same.
    /// </summary>
    /// <exception cref="ModelIntegrityException">A kept file does not match the kept manifest.</exception>
    /// <exception cref="FileNotFoundException">The entry lacks a file (written by a version of the app that kept only the graph, or pruned).</exception>
    public async Task<CachedModel> LoadKeptAsync(string model, string version, string folder, IReadOnlyCollection<string> roles, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(roles);
        var full = Path.GetFullPath(folder);
        if (!string.Equals(Path.GetDirectoryName(full), Path.TrimEndingDirectorySeparator(root), StringComparison.Ordinal))
        {
            throw new ArgumentException("The folder is not an entry of this cache.", nameof(folder));
        }
        var package = await ModelPackage.LoadAsync(new FolderModelFiles(full), [.. roles.Where(r => r != ModelFileRoles.Onnx)], cancellationToken).ConfigureAwait(false);
        var onnx = package.ServedGraph?.File
            ?? throw new ModelFormatException($"{full}: the kept manifest has no {ModelFileRoles.Onnx} file.");
        // The entry's name is derived from the model, the version and the graph's SHA-256: a kept manifest of anything else is not this version's.
        if (!string.Equals(Path.GetFileName(full), EntryName(model, version, onnx.Sha256), StringComparison.Ordinal))
        {
            throw new ModelIntegrityException($"{full}: the kept manifest is not the one of {model} version {version}.");
        }
        var path = Path.Combine(full, onnx.Name);
        if (!await MatchesAsync(path, onnx, cancellationToken).ConfigureAwait(false))
        {
            throw new ModelIntegrityException($"{full}: the cached {onnx.Name} does not match the kept manifest.");
        }
        Disk(() => Directory.SetLastWriteTimeUtc(full, time.GetUtcNow().UtcDateTime));
        return new CachedModel(package, path, CacheOutcome.Reused);
    }

    /// <summary>The name under which the manifest of an entry's version is kept beside its graph.</summary>
    internal const string KeptManifestName = ModelManifest.FileName;

    /// <summary>
    /// Keeps the version's manifest (byte for byte as the store has it) and its verified small files in the entry, once, so
    /// that <see cref="LoadKeptAsync"/> can read the whole served model from local disk. Failing to write them only loses that.
    /// </summary>
    private static void KeepServingFiles(string folder, ModelPackage package)
    {
        try
        {
            foreach (var name in package.FileNames.Where(n => n != KeptManifestName))
            {
                WriteOnce(Path.Combine(folder, name), package.GetFileByName(name).ToArray());
            }
            // The manifest last: an entry with a manifest has every file the manifest's serving roles name.
            WriteOnce(Path.Combine(folder, KeptManifestName), package.ManifestBytes.ToArray());
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The next start loads the usual way.
        }

        static void WriteOnce(string path, byte[] content)
        {
            if (File.Exists(path) && new FileInfo(path).Length == content.Length && File.ReadAllBytes(path).AsSpan().SequenceEqual(content))
            {
                return;
            }
            var temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}{TemporarySuffix}");
            File.WriteAllBytes(temporary, content);
            File.Move(temporary, path, overwrite: true);
        }
    }

    private string ServedRecordPath(string model) => Path.Combine(root, $".served-{EntryName(ModelNames.Validate(model), "", "")}");

    /// <summary>The entry's folder name: readable name and version (other characters replaced), and a hash of all three parts.</summary>
    internal static string EntryName(string model, string version, string sha256)
    {
        var readable = new StringBuilder();
        foreach (var c in $"{model}-{version}")
        {
            readable.Append(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_');
        }
        var text = readable.Length > 80 ? readable.ToString(0, 80) : readable.ToString();
        var key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{model}\n{version}\n{sha256.ToLowerInvariant()}")))[..16];
        return $"{text.TrimStart('.')}-{key}";
    }

    private static async Task<bool> MatchesAsync(string path, ModelFileEntry entry, CancellationToken cancellationToken)
    {
        try
        {
            await using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16, FileOptions.SequentialScan | FileOptions.Asynchronous);
            if (stream.Length != entry.Bytes)
            {
                return false;
            }
            var sha256 = Convert.ToHexStringLower(await SHA256.HashDataAsync(stream, cancellationToken).ConfigureAwait(false));
            return string.Equals(sha256, entry.Sha256, StringComparison.OrdinalIgnoreCase);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task DownloadAsync(IModelFileSource source, ModelFileEntry entry, string folder, string path, CancellationToken cancellationToken)
    {
        Disk(() =>
        {
            CreatePrivateDirectory(root);
            CreatePrivateDirectory(folder);
        });
        var temporary = Path.Combine(folder, $".{entry.Name}.{Guid.NewGuid():N}{TemporarySuffix}");
        try
        {
            await using (var file = await source.OpenReadAsync(entry.Name, cancellationToken).ConfigureAwait(false))
            {
                if (file.Length != entry.Bytes)
                {
                    throw new ModelIntegrityException($"{source.Description}: {entry.Name} is {file.Length} bytes, the manifest says {entry.Bytes}.");
                }
                ModelPackage.CheckFileSize(entry.Bytes, $"{source.Description}: {entry.Name}");
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                await using var output = Disk(() => new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous));
                var buffer = new byte[1 << 16];
                long written = 0;
                int read;
                while ((read = await file.Content.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
                {
                    written += read;
                    if (written > entry.Bytes)
                    {
                        throw new ModelIntegrityException($"{source.Description}: {entry.Name} is longer than the {entry.Bytes} bytes expected.");
                    }
                    hash.AppendData(buffer, 0, read);
                    try
                    {
                        await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    }
                    catch (IOException e)
                    {
                        throw new LocalModelCacheException($"writing the cached graph failed: {e.Message}", e);
                    }
                }
                var sha256 = Convert.ToHexStringLower(hash.GetHashAndReset());
                if (written != entry.Bytes)
                {
                    throw new ModelIntegrityException($"{source.Description}: {entry.Name} is {written} bytes, the manifest says {entry.Bytes}.");
                }
                if (!string.Equals(sha256, entry.Sha256, StringComparison.OrdinalIgnoreCase))
                {
                    throw new ModelIntegrityException($"{source.Description}: {entry.Name} has SHA-256 {sha256}, the manifest says {entry.Sha256}.");
                }
                Disk(() => output.Flush(flushToDisk: true));
            }
            Disk(() => File.Move(temporary, path, overwrite: true));
        }
        finally
        {
            try
            {
                File.Delete(temporary); // nothing when it was renamed
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Left for a later prune.
            }
        }
    }

    /// <summary>Deletes the least recently used entries while the cache is over its budget, and temporary files left by dead processes.</summary>
    private void Prune(string keep)
    {
        var now = time.GetUtcNow().UtcDateTime;
        try
        {
            var entries = new DirectoryInfo(root).GetDirectories().Select(d => (Folder: d, Bytes: SizeAndSweep(d, now))).OrderByDescending(e => e.Folder.LastWriteTimeUtc).ToList();
            var total = entries.Sum(e => e.Bytes);
            foreach (var (folder, bytes) in entries.AsEnumerable().Reverse())
            {
                if (total <= maxBytes)
                {
                    break;
                }
                if (string.Equals(folder.FullName, keep, StringComparison.Ordinal) || now - folder.LastWriteTimeUtc < RecentUse)
                {
                    continue;
                }
                folder.Delete(recursive: true);
                total -= bytes;
            }
        }
        catch (IOException)
        {
            // Another process pruned or wrote at the same time: the next load prunes again.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static long SizeAndSweep(DirectoryInfo folder, DateTime now)
    {
        long bytes = 0;
        foreach (var file in folder.GetFiles())
        {
            if (file.Name.EndsWith(TemporarySuffix, StringComparison.Ordinal) && now - file.LastWriteTimeUtc > RecentUse)
            {
                file.Delete();
                continue;
            }
            bytes += file.Length;
        }
        return bytes;
    }

    /// <summary>Runs a step on the local disk, turning its failures into <see cref="LocalModelCacheException"/>.</summary>
    private static void Disk(Action step) => Disk(() =>
    {
        step();
        return 0;
    });

    private static T Disk<T>(Func<T> step)
    {
        try
        {
            return step();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new LocalModelCacheException($"the local model cache failed: {e.Message}", e);
        }
    }

    private static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }
}
