using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>A request named a model that is not published in the store. HTTP 404.</summary>
public sealed class ModelNotFoundException(string message) : Exception(message);

/// <summary>A model this instance knows: its name, the version it has loaded (null when none) and whether it is loaded.</summary>
public sealed record KnownModel(string Name, string? LoadedVersion);

/// <summary>
/// The models one instance serves (docs/architecture.md, "Several models"): the <see cref="ModelNames.Default"/> model's
/// <see cref="ModelProvider"/> (the app's singleton, kept loaded and refreshed by <see cref="ModelRefreshService"/>) and
/// one provider per named model, created when a request or upload first names that model and the store has it. Each
/// provider loads its model on first use and hot-swaps it on its own, exactly as the default's does. Loaded named models
/// are kept within <see cref="ClassifierOptions.ModelMemoryBudgetMegabytes"/> (each counted by
/// <see cref="LoadedModel.EstimatedBytes"/>): after a load takes the total over it, the least recently used named models
/// that no request holds are unloaded (<see cref="ModelProvider.UnloadAsync"/>; a version still held by a request is
/// never disposed under it, and the one just used is never unloaded). The default model is never unloaded.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    private readonly ModelProvider defaultProvider;
    private readonly ClassifierContainers containers;
    private readonly IOptions<ClassifierOptions> options;
    private readonly ILogger<ModelProvider> providerLogger;
    private readonly ILogger<ModelRegistry> logger;
    private readonly ImageDecoder decoder;
    private readonly TimeProvider time;
    private readonly long budgetBytes;
    private readonly ConcurrentDictionary<string, Entry> named = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> absent = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim budgetLock = new(1, 1);
    private long useClock;
    private bool disposed;

    public ModelRegistry(ModelProvider defaultProvider, ClassifierContainers containers, IOptions<ClassifierOptions> options,
        ILogger<ModelProvider> providerLogger, ILogger<ModelRegistry> logger, ImageDecoder decoder, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        this.defaultProvider = defaultProvider;
        this.containers = containers;
        this.options = options;
        this.providerLogger = providerLogger;
        this.logger = logger;
        this.decoder = decoder;
        this.time = time ?? TimeProvider.System;
        budgetBytes = (long)options.Value.ModelMemoryBudgetMegabytes << 20;
    }

    public ModelProvider Default => defaultProvider;

    /// <summary>How many named models were unloaded to stay within the budget (tests, diagnostics).</summary>
    public int Evictions => Volatile.Read(ref evictions);

    private int evictions;

    /// <summary>
    /// The provider of a model by name. A name that is not valid, or that no published model has (no
    /// <c>&lt;name&gt;/current.json</c>), is a <see cref="ModelNotFoundException"/>; an unknown name is remembered for
    /// the refresh interval, so guessed names cost one HEAD request each per interval and hold no memory.
    /// </summary>
    public async Task<ModelProvider> GetAsync(string name, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (name == ModelNames.Default)
        {
            return defaultProvider;
        }
        if (ModelNames.Problem(name) is { } problem)
        {
            throw new ModelNotFoundException(problem);
        }
        if (named.TryGetValue(name, out var entry))
        {
            return entry.Provider;
        }
        if (!await IsPublishedAsync(name, cancellationToken).ConfigureAwait(false))
        {
            throw new ModelNotFoundException($"No model named \"{name}\" is published.");
        }
        var created = new Entry(new ModelProvider(new ModelStore(containers.Models, name), options, providerLogger, time, decoder));
        var winner = named.GetOrAdd(name, created);
        if (!ReferenceEquals(winner, created))
        {
            created.Provider.Dispose();
        }
        return winner.Provider;
    }

    /// <summary>A lease on a model's live version by name; then keeps the loaded named models within the budget.</summary>
    public async Task<ModelLease> AcquireAsync(string name, CancellationToken cancellationToken)
    {
        var provider = await GetAsync(name, cancellationToken).ConfigureAwait(false);
        var lease = await provider.AcquireAsync(cancellationToken).ConfigureAwait(false);
        if (named.TryGetValue(provider.Model, out var entry))
        {
            Interlocked.Exchange(ref entry.LastUse, Interlocked.Increment(ref useClock));
            await EnforceBudgetAsync(provider).ConfigureAwait(false);
        }
        return lease;
    }

    /// <summary>
    /// The lease that serves an image during a canary release: when the model's <c>current.json</c> names a canary and
    /// <paramref name="routingKey"/>'s bucket (<see cref="CanaryRouter"/>) falls in its share, a lease on the canary's
    /// version replaces <paramref name="lease"/> (released); otherwise <paramref name="lease"/> itself. A canary that
    /// cannot be served (not published, refused) leaves the image on the current version.
    /// </summary>
    public async Task<ModelLease> RouteAsync(string name, ModelLease lease, ReadOnlyMemory<byte> routingKey, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var provider = await GetAsync(name, cancellationToken).ConfigureAwait(false);
        var canary = provider.Canary;
        if (canary is null || canary.Version == lease.Version || !CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(routingKey.Span), canary))
        {
            return lease;
        }
        try
        {
            var routed = await AcquireVersionAsync(name, canary.Version, cancellationToken).ConfigureAwait(false);
            lease.Dispose();
            return routed;
        }
        catch (Exception e) when (e is ModelNotFoundException or ModelUnavailableException)
        {
            logger.CanaryUnavailable(e, name, canary.Version, lease.Version);
            return lease;
        }
    }

    /// <summary>
    /// A lease on one fixed version of a model (a Custom Vision published name, a canary's version): served by a pinned
    /// provider of its own, loaded on first use and counted against the budget like a named model. A version that is not
    /// published is a <see cref="ModelNotFoundException"/>.
    /// </summary>
    public async Task<ModelLease> AcquireVersionAsync(string name, string version, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        if (ModelNames.Problem(name) is { } problem)
        {
            throw new ModelNotFoundException(problem);
        }
        var key = $"{name}@{version}";
        if (!named.TryGetValue(key, out var entry))
        {
            var store = new ModelStore(containers.Models, name);
            if (!await store.ExistsAsync(version, cancellationToken).ConfigureAwait(false))
            {
                throw new ModelNotFoundException($"Model \"{name}\" has no published version \"{(version.Length > 100 ? version[..100] : version)}\".");
            }
            var created = new Entry(new ModelProvider(store, options, providerLogger, time, decoder, version));
            entry = named.GetOrAdd(key, created);
            if (!ReferenceEquals(entry, created))
            {
                created.Provider.Dispose();
            }
        }
        var lease = await entry.Provider.AcquireAsync(cancellationToken).ConfigureAwait(false);
        Interlocked.Exchange(ref entry.LastUse, Interlocked.Increment(ref useClock));
        await EnforceBudgetAsync(entry.Provider).ConfigureAwait(false);
        return lease;
    }

    /// <summary>
    /// Whether a version of a model is published (loaded here already, or its manifest exists); a miss is remembered for
    /// the refresh interval, so a name that is no version costs one HEAD request per interval.
    /// </summary>
    public async Task<bool> IsPublishedVersionAsync(string name, string version, CancellationToken cancellationToken)
    {
        var key = $"{name}@{version}";
        if (named.ContainsKey(key))
        {
            return true;
        }
        if (absent.TryGetValue(key, out var since) && time.GetElapsedTime(since) < options.Value.ModelRefreshInterval)
        {
            return false;
        }
        var exists = await new ModelStore(containers.Models, name).ExistsAsync(version, cancellationToken).ConfigureAwait(false);
        if (!exists && absent.Count < 10_000)
        {
            absent[key] = time.GetTimestamp();
        }
        return exists;
    }

    /// <summary>
    /// The model an uploaded blob is classified with (README "Several models"): the first segment of the blob's name
    /// when it names a published model (<c>cats/photo.jpg</c> goes to model <c>cats</c>), else the default model.
    /// </summary>
    public async Task<string> RouteBlobAsync(string blobName, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(blobName);
        var slash = blobName.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0)
        {
            return ModelNames.Default;
        }
        var first = blobName[..slash];
        if (first == ModelNames.Default || !ModelNames.IsValid(first))
        {
            return ModelNames.Default;
        }
        return named.ContainsKey(first) || await IsPublishedAsync(first, cancellationToken).ConfigureAwait(false) ? first : ModelNames.Default;
    }

    /// <summary>The named models this instance has providers for, with the version each has loaded.</summary>
    public IReadOnlyList<KnownModel> Loaded =>
        [.. named.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => new KnownModel(p.Key, p.Value.Provider.Current?.Version))];

    /// <summary>Checks every loaded named model's <c>current.json</c> (the refresh service's tick), each on its own.</summary>
    public async Task RefreshLoadedAsync(CancellationToken cancellationToken)
    {
        foreach (var (name, entry) in named)
        {
            if (entry.Provider.Current is null)
            {
                continue; // not loaded (or unloaded for the budget): loaded again by its next request
            }
            try
            {
                await entry.Provider.RefreshAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (ModelProvider.IsStorageFailure(e) && !cancellationToken.IsCancellationRequested)
            {
                logger.NamedRefreshFailed(e, name);
            }
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }
        disposed = true;
        foreach (var entry in named.Values)
        {
            entry.Provider.Dispose();
        }
        named.Clear();
    }

    private async Task<bool> IsPublishedAsync(string name, CancellationToken cancellationToken)
    {
        var recheck = options.Value.ModelRefreshInterval;
        if (absent.TryGetValue(name, out var since) && time.GetElapsedTime(since) < recheck)
        {
            return false;
        }
        var exists = await new ModelStore(containers.Models, name).GetCurrentETagAsync(cancellationToken).ConfigureAwait(false) is not null;
        if (exists)
        {
            absent.TryRemove(name, out _);
        }
        else if (absent.Count < 10_000)
        {
            absent[name] = time.GetTimestamp();
        }
        return exists;
    }

    private async Task EnforceBudgetAsync(ModelProvider justUsed)
    {
        if (Total() <= budgetBytes)
        {
            return;
        }
        await budgetLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var candidates = named
                .Where(p => !ReferenceEquals(p.Value.Provider, justUsed) && p.Value.Provider.Current is { InUse: false })
                .OrderBy(p => Interlocked.Read(ref p.Value.LastUse))
                .ToList();
            foreach (var (name, entry) in candidates)
            {
                if (Total() <= budgetBytes)
                {
                    break;
                }
                if (entry.Provider.Current is not { InUse: false } model)
                {
                    continue; // a request took it meanwhile: it stays until it is least recently used and idle
                }
                var version = model.Version;
                var bytes = model.EstimatedBytes;
                if (await entry.Provider.UnloadAsync().ConfigureAwait(false))
                {
                    Interlocked.Increment(ref evictions);
                    logger.ModelUnloaded(name, version, bytes >> 20, budgetBytes >> 20);
                }
            }
        }
        finally
        {
            budgetLock.Release();
        }
    }

    private long Total() =>
        (defaultProvider.Current?.EstimatedBytes ?? 0) + named.Values.Sum(e => e.Provider.Current?.EstimatedBytes ?? 0);

    private sealed class Entry(ModelProvider provider)
    {
        public ModelProvider Provider { get; } = provider;

        public long LastUse;
    }
}
