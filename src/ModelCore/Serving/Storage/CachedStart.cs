using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>How a <see cref="CachedStart{T}"/> ended: the started model when the store confirmed it, else why it was discarded.</summary>
public sealed record CachedStartResult<T>(T? Started, CachedModel? Model, string? Discarded) where T : class;

/// <summary>
/// A process's head start from its local model cache (issue 31, cold start): the version this instance served last
/// (<see cref="LocalModelCache.RememberServed"/>) is loaded from local disk and made ready (for serving: its ONNX Runtime
/// session created and warmed up) on the thread pool, WHILE the caller reads <c>current.json</c> from the store; at the
/// same time that version's manifest is read from the store. The caller then calls <see cref="ConfirmAsync"/> with the
/// version <c>current.json</c> names, and serves the started model only when
/// <list type="bullet">
/// <item>it is that version (otherwise it is discarded and the caller loads the current one: a stale model is never served),</item>
/// <item>the store's manifest of that version is, byte for byte, the one the cache kept (so the same files, sizes, SHA-256s,
/// labels and settings; otherwise discarded), and</item>
/// <item>every local file matched the kept manifest (sizes and SHA-256s, checked before it was made ready; otherwise discarded).</item>
/// </list>
/// So what is served is verified against the store's manifest exactly as a normal load is; only the order differs.
/// </summary>
/// <typeparam name="T">What is made ready from the cached model (the serving pipeline); disposed when discarded.</typeparam>
public sealed class CachedStart<T> where T : class, IDisposable
{
    private readonly Task<(T Started, CachedModel Model)> started;
    private readonly Task<byte[]?> storeManifest;
    private int settled;

    internal CachedStart(string version, Task<(T, CachedModel)> started, Task<byte[]?> storeManifest)
    {
        Version = version;
        this.started = started;
        this.storeManifest = storeManifest;
    }

    /// <summary>The version started: the one this instance served last.</summary>
    public string Version { get; }

    /// <summary>
    /// Ends the head start with the version <c>current.json</c> names: the started model when it is that version and the
    /// store's manifest of it is the kept one; otherwise null and the reason (the started model is disposed, now or when it
    /// is ready). A failure of the store's manifest request propagates (the caller's load would have failed the same way).
    /// </summary>
    public async Task<CachedStartResult<T>> ConfirmAsync(string currentVersion)
    {
        ArgumentNullException.ThrowIfNull(currentVersion);
        if (Interlocked.Exchange(ref settled, 1) != 0)
        {
            throw new InvalidOperationException("This cached start has already ended.");
        }
        if (!string.Equals(currentVersion, Version, StringComparison.Ordinal))
        {
            DisposeWhenReady();
            return new(null, null, $"current.json names version {currentVersion}, not {Version}");
        }
        byte[]? manifest;
        try
        {
            manifest = await storeManifest.ConfigureAwait(false);
        }
        catch
        {
            DisposeWhenReady();
            throw;
        }
        (T Started, CachedModel Model) ready;
        try
        {
            ready = await started.ConfigureAwait(false);
        }
        catch (Exception e)
        {
            return new(null, null, $"the cached copy could not be used ({e.GetType().Name}: {e.Message})");
        }
        if (manifest is null)
        {
            ready.Started.Dispose();
            return new(null, null, $"the store has no manifest of version {Version}");
        }
        if (!manifest.AsSpan().SequenceEqual(ready.Model.Package.ManifestBytes.Span))
        {
            ready.Started.Dispose();
            return new(null, null, $"the store's manifest of version {Version} differs from the one the cache kept");
        }
        return new(ready.Started, ready.Model, null);
    }

    /// <summary>Abandons the head start (the caller's check ended without a version to confirm): the started model is disposed when ready.</summary>
    public void Discard()
    {
        if (Interlocked.Exchange(ref settled, 1) == 0)
        {
            DisposeWhenReady();
        }
    }

    private void DisposeWhenReady()
    {
        // Observed, so that a failed request or load of a discarded start is no unobserved task exception.
        _ = storeManifest.ContinueWith(t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        _ = started.ContinueWith(t =>
        {
            if (t.IsCompletedSuccessfully)
            {
                t.Result.Started.Dispose();
            }
            else
            {
                _ = t.Exception;
            }
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}

/// <summary>Starts a <see cref="CachedStart{T}"/>.</summary>
public static class CachedStart
{
    /// <summary>
    /// Starts the version <paramref name="store"/>'s model last served on this instance, or returns null when the cache
    /// records none. Returns at once: the local load and <paramref name="create"/> run on the thread pool, the store's
    /// manifest request is sent. The caller must end it with <see cref="CachedStart{T}.ConfirmAsync"/> or <see cref="CachedStart{T}.Discard"/>.
    /// </summary>
    /// <param name="cache">The instance's local model cache.</param>
    /// <param name="store">The model's store (for the confirming manifest request).</param>
    /// <param name="roles">The roles to load (<see cref="ModelPackage.ServingRoles"/>).</param>
    /// <param name="create">Makes the cached model ready (creates and warms up the pipeline); runs on the thread pool.</param>
    /// <param name="cancellationToken">Cancels the local load and the manifest request.</param>
    public static CachedStart<T>? Begin<T>(LocalModelCache cache, ModelStore store, IReadOnlyCollection<string> roles, Func<CachedModel, T> create, CancellationToken cancellationToken)
        where T : class, IDisposable
    {
        ArgumentNullException.ThrowIfNull(cache);
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(create);
        if (cache.FindServed(store.Model) is not { } served)
        {
            return null;
        }
        var (version, folder) = served;
        var local = Task.Run(async () =>
        {
            var model = await cache.LoadKeptAsync(store.Model, version, folder, roles, cancellationToken).ConfigureAwait(false);
            return (create(model), model);
        }, cancellationToken);
        // On the thread pool too: the caller goes on to its own request at once.
        return new CachedStart<T>(version, local, Task.Run(() => store.GetManifestBytesAsync(version, cancellationToken), cancellationToken));
    }
}
