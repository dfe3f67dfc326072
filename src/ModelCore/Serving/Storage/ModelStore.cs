using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// The live-version pointer, <c>models/current.json</c>: the version serving all traffic, or, during a canary release,
/// all traffic but <see cref="Canary"/>'s share.
/// </summary>
public sealed record CurrentModelPointer(string Version, DateTimeOffset PublishedUtc, string? Previous)
{
    /// <summary>A version being released to a share of the traffic (<see cref="CanaryRouter"/>); absent when one version serves everything.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public CanaryRelease? Canary { get; init; }
}

/// <summary>A canary release: <see cref="Version"/> serves <see cref="Traffic"/> percent (1-99) of the images, chosen by <see cref="CanaryRouter"/>.</summary>
public sealed record CanaryRelease(string Version, int Traffic);

/// <summary>
/// Which images a canary serves: the first four bytes of the SHA-256 of the routing key (an upload's blob name; an HTTP
/// image's bytes) as a number, modulo 100, below the canary's traffic share. Stable: the same key always gets the same
/// version, on every instance, for as long as the share is unchanged (raising it only moves more keys to the canary).
/// </summary>
public static class CanaryRouter
{
    public static int Bucket(ReadOnlySpan<byte> key)
    {
        Span<byte> hash = stackalloc byte[32];
        SHA256.HashData(key, hash);
        return (int)(System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(hash) % 100);
    }

    public static int Bucket(string key) => Bucket(System.Text.Encoding.UTF8.GetBytes(key ?? throw new ArgumentNullException(nameof(key))));

    public static bool ChoosesCanary(int bucket, CanaryRelease? canary) => canary is { Traffic: > 0 } c && bucket < c.Traffic;
}

/// <summary>The pointer as read, with the ETag that a conditional update must match.</summary>
public sealed record CurrentModel(CurrentModelPointer State, ETag ETag);

/// <summary>A published version as listed by <see cref="ModelStore.ListAsync"/>.</summary>
public sealed record PublishedModel(string Version, ModelManifest? Manifest, string? Problem, bool IsCurrent);

/// <summary>
/// The blob-backed store of one named model (docs/architecture.md, "Storage contract"): <c>&lt;version&gt;/...</c> is
/// written once and never overwritten (files first, the manifest last), then <c>current.json</c> is moved with an
/// ETag condition, so a reader either sees the previous complete model or the new complete model. The
/// <see cref="ModelNames.Default"/> model's files are at the container's root (the layout of a store from before named
/// models, read as it is); any other model's are under <c>&lt;name&gt;/</c>.
/// </summary>
public sealed class ModelStore
{
    public const string PointerBlobName = "current.json";

    private readonly BlobContainerClient container;
    private readonly string prefix;

    public ModelStore(BlobContainerClient container, string model = ModelNames.Default)
    {
        ArgumentNullException.ThrowIfNull(container);
        this.container = container;
        Model = ModelNames.Validate(model);
        prefix = ModelNames.Prefix(model);
    }

    /// <summary>The model this store reads and writes.</summary>
    public string Model { get; }

    /// <summary>The blob name of this model's pointer (<c>current.json</c>, or <c>&lt;name&gt;/current.json</c>).</summary>
    public string PointerName => prefix + PointerBlobName;

    /// <summary>The largest <c>current.json</c> read (a real one is about 150 bytes): a larger one is refused unread.</summary>
    public const int MaxPointerBytes = 64 * 1024;

    private static readonly JsonSerializerOptions PointerJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public BlobContainerClient Container => container;

    /// <summary>A new version id: UTC time to the second plus a short random suffix, so ids sort by time.</summary>
    public static string NewVersionId() =>
        $"{DateTimeOffset.UtcNow:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(3))}";

    /// <summary>Whether a string can be a version id: a plain name usable as a blob prefix.</summary>
    public static bool IsValidVersion(string version) =>
        ModelManifest.IsPlainFileName(version) && version.Length <= 100 && version.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>
    /// Uploads a verified model folder as a new immutable version and, unless <paramref name="makeCurrent"/>
    /// is false, points <c>current.json</c> at it. Returns the version id.
    /// </summary>
    public async Task<string> PublishAsync(string folder, bool makeCurrent = true, string? version = null, CancellationToken cancellationToken = default)
    {
        var package = await ModelPackage.LoadAsync(folder, cancellationToken);
        if (package.Manifest is { Precision: ModelPrecision.Int8 } int8 && int8.Quantization is not { Accepted: true })
        {
            throw new ModelFormatException(
                $"{folder}: the manifest says the graph is int8 but records no passing int8 check (accuracy against fp32 on the validation images); an int8 graph is published only after that check. Nothing was published.");
        }
        version ??= NewVersionId();
        if (!IsValidVersion(version))
        {
            throw new ArgumentException($"\"{version}\" is not a valid version id (letters, digits, '-', '_', '.').", nameof(version));
        }
        await container.CreateIfNotExistsAsync(cancellationToken: cancellationToken);
        await CheckNoClashAsync(version, cancellationToken);
        var immutable = new BlobUploadOptions { Conditions = new BlobRequestConditions { IfNoneMatch = ETag.All } };
        foreach (var entry in package.Manifest.Files)
        {
            await UploadAsync($"{prefix}{version}/{entry.Name}", BinaryData.FromBytes(package.GetFileByName(entry.Name)), immutable, cancellationToken);
        }
        var manifest = package.Manifest with { Version = version };
        await UploadAsync($"{prefix}{version}/{ModelManifest.FileName}", BinaryData.FromString(manifest.ToJson()), immutable, cancellationToken);
        if (makeCurrent)
        {
            await SetCurrentAsync(version, cancellationToken);
        }
        return version;
    }

    /// <summary>The pointer and its ETag, or null when nothing has been published. A pointer over <see cref="MaxPointerBytes"/> is refused unread.</summary>
    public async Task<CurrentModel?> GetCurrentAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            var (content, etag) = await ReadSmallAsync(PointerName, MaxPointerBytes, cancellationToken);
            var pointer = JsonSerializer.Deserialize<CurrentModelPointer>(content, PointerJson);
            return pointer is { Version: { } v } && IsValidVersion(v)
                && (pointer.Canary is null || (pointer.Canary.Version is { } c && IsValidVersion(c) && pointer.Canary.Traffic is >= 1 and <= 99))
                ? new CurrentModel(pointer, etag)
                : throw new ModelFormatException($"{container.Uri}/{PointerName} does not name a valid version.");
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
        catch (JsonException e)
        {
            throw new ModelFormatException($"{container.Uri}/{PointerName} is not valid JSON ({e.Message}).", e);
        }
    }

    /// <summary>The ETag of <c>current.json</c> without downloading it (a cheap change check), or null when absent.</summary>
    public async Task<ETag?> GetCurrentETagAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return (await container.GetBlobClient(PointerName).GetPropertiesAsync(cancellationToken: cancellationToken)).Value.ETag;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>The files of a version in the store, unread (e.g. for <see cref="LocalModelCache"/>).</summary>
    public IModelFileSource Files(string version) => IsValidVersion(version)
        ? new BlobModelFiles(container, prefix + version)
        : throw new ArgumentException($"\"{version}\" is not a valid version id.", nameof(version));

    /// <summary>
    /// Downloads a version and verifies its files against its manifest: all of them, or only those
    /// with the given roles (<see cref="ModelPackage.ServingRoles"/> for serving: no training weights).
    /// </summary>
    public Task<ModelPackage> LoadAsync(string version, IReadOnlyCollection<string>? roles = null, CancellationToken cancellationToken = default)
    {
        if (!IsValidVersion(version))
        {
            throw new ArgumentException($"\"{version}\" is not a valid version id.", nameof(version));
        }
        return ModelPackage.LoadAsync(new BlobModelFiles(container, prefix + version), roles, cancellationToken);
    }

    /// <summary>
    /// Points <c>current.json</c> at an existing version (publish or rollback) after downloading and
    /// verifying it, with an ETag condition: if another writer moved the pointer meanwhile, this fails
    /// rather than overwriting their change.
    /// </summary>
    public async Task<CurrentModelPointer> SetCurrentAsync(string version, CancellationToken cancellationToken = default)
    {
        await LoadAsync(version, roles: null, cancellationToken);
        var current = await GetCurrentAsync(cancellationToken);
        return await WritePointerAsync(new CurrentModelPointer(version, DateTimeOffset.UtcNow, current?.State.Version), current, cancellationToken);
    }

    private async Task<CurrentModelPointer> WritePointerAsync(CurrentModelPointer pointer, CurrentModel? current, CancellationToken cancellationToken)
    {
        var conditions = current is null
            ? new BlobRequestConditions { IfNoneMatch = ETag.All }
            : new BlobRequestConditions { IfMatch = current.ETag };
        try
        {
            await container.GetBlobClient(PointerName).UploadAsync(
                BinaryData.FromString(JsonSerializer.Serialize(pointer, PointerJson)),
                new BlobUploadOptions { Conditions = conditions, HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" } },
                cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            throw new InvalidOperationException($"{PointerName} was changed by another publisher while moving it to {pointer.Version}; nothing was changed by this call. Retry.", e);
        }
        return pointer;
    }

    /// <summary>
    /// Starts, changes or completes a canary release of an existing version (verified first): with
    /// <paramref name="traffic"/> 1-99 the current version stays and <paramref name="version"/> gets that share of the
    /// traffic; with 100 it becomes the current version (as <see cref="SetCurrentAsync"/>, the canary ended). Same ETag
    /// condition as <see cref="SetCurrentAsync"/>.
    /// </summary>
    public async Task<CurrentModelPointer> PromoteAsync(string version, int traffic, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(traffic, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(traffic, 100);
        if (traffic == 100)
        {
            return await SetCurrentAsync(version, cancellationToken);
        }
        await LoadAsync(version, roles: null, cancellationToken);
        var current = await GetCurrentAsync(cancellationToken)
            ?? throw new InvalidOperationException($"Model {Model} has no current version: a canary needs one to share the traffic with. Promote {version} with --traffic 100 (the default).");
        if (current.State.Version == version)
        {
            throw new InvalidOperationException($"{version} is model {Model}'s current version already; a canary is another version.");
        }
        return await WritePointerAsync(current.State with { Canary = new CanaryRelease(version, traffic) }, current, cancellationToken);
    }

    /// <summary>Whether a version of this model is published (its manifest exists; the files are verified when it is loaded).</summary>
    public async Task<bool> ExistsAsync(string version, CancellationToken cancellationToken = default) =>
        IsValidVersion(version) && await container.GetBlobClient($"{prefix}{version}/{ModelManifest.FileName}").ExistsAsync(cancellationToken);

    /// <summary>
    /// Ends a canary release (the current version serves everything again), or, without one, points <c>current.json</c>
    /// back at the version it named before (<see cref="CurrentModelPointer.Previous"/>), verified first; the same ETag
    /// condition as <see cref="SetCurrentAsync"/>.
    /// </summary>
    public async Task<CurrentModelPointer> RollbackAsync(CancellationToken cancellationToken = default)
    {
        var current = await GetCurrentAsync(cancellationToken)
            ?? throw new InvalidOperationException($"Model {Model} has no current version to roll back from.");
        if (current.State.Canary is not null)
        {
            // A canary is rolled back first: the current version serves everything again.
            return await WritePointerAsync(current.State with { Canary = null }, current, cancellationToken);
        }
        var previous = current.State.Previous is { } p && IsValidVersion(p)
            ? p
            : throw new InvalidOperationException($"Model {Model}'s current version {current.State.Version} records no previous version; promote a version by its id instead (models list).");
        return await SetCurrentAsync(previous, cancellationToken);
    }

    /// <summary>A version's manifest alone (no model file is read or verified), or null when the version has none.</summary>
    /// <exception cref="ModelFormatException">The manifest is not a valid one.</exception>
    public async Task<ModelManifest?> GetManifestAsync(string version, CancellationToken cancellationToken = default)
    {
        if (!IsValidVersion(version))
        {
            throw new ArgumentException($"\"{version}\" is not a valid version id.", nameof(version));
        }
        var source = $"{prefix}{version}/{ModelManifest.FileName}";
        try
        {
            var (content, _) = await ReadSmallAsync(source, ModelManifest.MaxBytes, cancellationToken);
            return ModelManifest.Parse(content, source);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>A version's manifest as stored, unparsed (within <see cref="ModelManifest.MaxBytes"/>), or null when the version has none.</summary>
    public async Task<byte[]?> GetManifestBytesAsync(string version, CancellationToken cancellationToken = default)
    {
        if (!IsValidVersion(version))
        {
            throw new ArgumentException($"\"{version}\" is not a valid version id.", nameof(version));
        }
        try
        {
            return (await ReadSmallAsync($"{prefix}{version}/{ModelManifest.FileName}", ModelManifest.MaxBytes, cancellationToken)).Content;
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
    }

    /// <summary>Every version in the store, newest first, with its manifest (or why it could not be read).</summary>
    public async Task<IReadOnlyList<PublishedModel>> ListAsync(CancellationToken cancellationToken = default)
    {
        var current = await GetCurrentAsync(cancellationToken);
        var versions = new List<string>();
        await foreach (var item in container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", prefix: prefix.Length == 0 ? null : prefix, cancellationToken))
        {
            if (item.IsPrefix)
            {
                versions.Add(item.Prefix[prefix.Length..].TrimEnd('/'));
            }
        }
        var result = new List<PublishedModel>();
        foreach (var version in versions.Where(IsValidVersion).OrderDescending(StringComparer.Ordinal))
        {
            var source = $"{prefix}{version}/{ModelManifest.FileName}";
            ModelManifest? manifest = null;
            string? problem = null;
            try
            {
                var (content, _) = await ReadSmallAsync(source, ModelManifest.MaxBytes, cancellationToken);
                manifest = ModelManifest.Parse(content, source);
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                if (prefix.Length == 0 && await IsNamedModelFolderAsync(container, version, cancellationToken))
                {
                    continue; // another model's folder at the root, not a version of the default model
                }
                problem = "incomplete: no manifest";
            }
            catch (ModelFormatException e)
            {
                problem = e.Message;
            }
            catch (Exception e) when (e is not (RequestFailedException or OperationCanceledException or IOException))
            {
                // A manifest can break its own checks in ways no exception list names: one bad version is listed as
                // unreadable, it does not end the listing.
                problem = $"{source}: unreadable manifest ({e.GetType().Name}: {e.Message})";
            }
            result.Add(new PublishedModel(version, manifest, problem, current?.State.Version == version));
        }
        return result;
    }

    /// <summary>
    /// The models in a container: <see cref="ModelNames.Default"/> when anything is published at the root, then every
    /// named model (a root folder holding a <c>current.json</c> or version folders), by name.
    /// </summary>
    public static async Task<IReadOnlyList<string>> ListModelsAsync(BlobContainerClient container, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(container);
        var names = new SortedSet<string>(StringComparer.Ordinal);
        var hasDefault = false;
        try
        {
            await foreach (var item in container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", prefix: null, cancellationToken))
            {
                if (!item.IsPrefix)
                {
                    hasDefault |= item.Blob.Name == PointerBlobName;
                    continue;
                }
                var folder = item.Prefix.TrimEnd('/');
                if (ModelNames.IsValid(folder) && folder != ModelNames.Default && await IsNamedModelFolderAsync(container, folder, cancellationToken))
                {
                    names.Add(folder);
                }
                else
                {
                    hasDefault |= IsValidVersion(folder);
                }
            }
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return [];
        }
        return hasDefault ? [ModelNames.Default, .. names] : [.. names];
    }

    /// <summary>
    /// Whether a root folder is a named model's: it holds <c>current.json</c> or folders (a version folder holds only files).
    /// </summary>
    private static async Task<bool> IsNamedModelFolderAsync(BlobContainerClient container, string folder, CancellationToken cancellationToken)
    {
        await foreach (var item in container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", prefix: folder + "/", cancellationToken))
        {
            if (item.IsPrefix || item.Blob.Name == $"{folder}/{PointerBlobName}")
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// A named model and a version of the default model share the root's folder names: a named model is not published
    /// where a default version of its name exists, and a default version is not published under a named model's name.
    /// </summary>
    private async Task CheckNoClashAsync(string version, CancellationToken cancellationToken)
    {
        if (prefix.Length > 0)
        {
            if (await container.GetBlobClient($"{Model}/{ModelManifest.FileName}").ExistsAsync(cancellationToken))
            {
                throw new InvalidOperationException(
                    $"The default model has a version named \"{Model}\", so no model of that name can be stored beside it. Choose another model name. Nothing was published.");
            }
        }
        else if (await IsNamedModelFolderAsync(container, version, cancellationToken))
        {
            throw new InvalidOperationException($"\"{version}\" is the name of a model in this store; publish the default model under another version id. Nothing was published.");
        }
    }

    /// <summary>
    /// A small blob's content and ETag, its length checked against <paramref name="maxBytes"/> from the response's headers
    /// before its body is read: a hostile size is refused (<see cref="ModelFormatException"/>), never allocated.
    /// </summary>
    private async Task<(byte[] Content, ETag ETag)> ReadSmallAsync(string name, int maxBytes, CancellationToken cancellationToken)
    {
        var response = await container.GetBlobClient(name).DownloadStreamingAsync(cancellationToken: cancellationToken);
        await using var stream = response.Value.Content;
        var length = response.Value.Details.ContentLength;
        if (length > maxBytes)
        {
            throw new ModelFormatException($"{container.Uri}/{name} is {length} bytes; at most {maxBytes} are read.");
        }
        var content = new byte[length];
        await stream.ReadExactlyAsync(content, cancellationToken);
        return (content, response.Value.Details.ETag);
    }

    private async Task UploadAsync(string name, BinaryData content, BlobUploadOptions options, CancellationToken cancellationToken)
    {
        try
        {
            await container.GetBlobClient(name).UploadAsync(content, options, cancellationToken);
        }
        catch (RequestFailedException e) when (e.Status is 409 or 412)
        {
            throw new InvalidOperationException($"{container.Uri}/{name} already exists: published versions are immutable. Publish under a new version id.", e);
        }
    }
}

/// <summary>A model version's files in the models container.</summary>
public sealed class BlobModelFiles(BlobContainerClient container, string version) : IModelFileSource
{
    public string Description => $"{container.Uri}/{version}";

    public async Task<OpenedModelFile> OpenReadAsync(string name, CancellationToken cancellationToken)
    {
        if (!ModelManifest.IsPlainFileName(name))
        {
            throw new ModelFormatException($"{Description}: {name} is not a plain file name.");
        }
        try
        {
            var response = await container.GetBlobClient($"{version}/{name}").DownloadStreamingAsync(cancellationToken: cancellationToken);
            return new OpenedModelFile(response.Value.Content, response.Value.Details.ContentLength);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            throw new FileNotFoundException($"{Description}: model file {name} is missing.", name, e);
        }
    }
}
