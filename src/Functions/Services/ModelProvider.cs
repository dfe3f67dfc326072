using Azure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// The live model of this instance. <see cref="ModelRefreshService"/> loads it at startup and checks
/// <c>current.json</c>'s ETag every <see cref="ClassifierOptions.ModelRefreshInterval"/> (a HEAD request); a request
/// that finds no model yet loads it on demand, and concurrent first requests share ONE load, which runs on this
/// provider's own lifetime (a caller that disconnects stops waiting, the load goes on for the others). A new
/// version is loaded and verified beside the old one, then swapped in with one
/// <see cref="Interlocked.Exchange{T}(ref T, T)"/>; the old one is disposed by reference counting once its last
/// request ends. A candidate that cannot be loaded for any reason but storage (it fails verification, a size or
/// a file is wrong, ONNX Runtime or the pipeline throws anything while it is loaded and warmed up), or a
/// <c>current.json</c> that is not a valid pointer, is refused: the old one stays live, and the refused ETag is
/// remembered so that it is not downloaded again at every check. A load that failed for storage (a request failed,
/// a download broke off) is remembered for
/// <see cref="FailureBackoff"/>: callers meanwhile get <see cref="ModelUnavailableException"/> at once instead of
/// queueing for one failing load after another. Answers never say where the storage is; the logs do.
/// </summary>
public sealed class ModelProvider : IDisposable
{
    private readonly ModelStore store;
    private readonly ILogger<ModelProvider> logger;
    private readonly TimeProvider time;
    private readonly TimeSpan refreshInterval;
    private readonly OnnxEngineOptions engineOptions;
    private readonly LocalModelCache? cache;
    private readonly bool startFromCache;
    private readonly ImageLimits limits;
    private readonly ImageDecoder decoder;
    private readonly SemaphoreSlim checkLock = new(1, 1);
    private readonly CancellationTokenSource lifetime = new();
    private readonly Lock gate = new();

    private LoadedModel? current;
    private CanaryRelease? canary;
    private Task? sharedCheck;
    private long lastCheckTicks = long.MinValue;
    private long failedTicks = long.MinValue;
    private ETag? liveETag;
    private ETag? refusedETag;
    private string? unavailableReason;
    private int loads;
    private int refusals;
    private int checks;
    private bool disposed;

    private readonly string? pinnedVersion;

    public ModelProvider(ModelStore store, IOptions<ClassifierOptions> options, ILogger<ModelProvider> logger, TimeProvider? time = null, ImageDecoder? decoder = null)
        : this(store, options, logger, time, decoder, pinnedVersion: null)
    {
    }

    /// <summary>
    /// A provider of one fixed version (<paramref name="pinnedVersion"/>, e.g. a Custom Vision published name or a canary's
    /// version) instead of the one <c>current.json</c> names: versions are immutable, so it is loaded once and never swapped.
    /// </summary>
    internal ModelProvider(ModelStore store, IOptions<ClassifierOptions> options, ILogger<ModelProvider> logger, TimeProvider? time, ImageDecoder? decoder, string? pinnedVersion)
    {
        this.pinnedVersion = pinnedVersion;
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        this.store = store;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        var settings = options.Value;
        refreshInterval = settings.ModelRefreshInterval;
        limits = settings.ToImageLimits();
        // The app's decoder (its limits and the process-wide decode budget); a new one over the same limits without one.
        this.decoder = decoder ?? new ImageDecoder(limits);
        if (settings.ReturnFreedModelMemory)
        {
            NativeHeap.ReturnLargeBlocksToSystem(); // once per process, before its first session (see NativeHeap)
        }
        cache = settings.ModelCacheMegabytes > 0
            ? new LocalModelCache(settings.ModelCacheDirectory ?? LocalModelCache.DefaultRoot, (long)settings.ModelCacheMegabytes << 20, this.time)
            : null;
        startFromCache = settings.StartFromCachedModel;
        engineOptions = new OnnxEngineOptions
        {
            IntraOpThreads = settings.IntraOpThreads ?? OnnxEngineOptions.Default.IntraOpThreads,
            InterOpThreads = settings.InterOpThreads,
        };
    }

    /// <summary>The name of the model this provider serves (<see cref="ModelNames.Default"/> for the app's default model).</summary>
    public string Model => store.Model;

    /// <summary>The live version, or null before the first load (never blocks, never calls storage).</summary>
    public LoadedModel? Current => Volatile.Read(ref current);

    /// <summary>The canary release <c>current.json</c> named at the last check (null: the live version serves everything).</summary>
    public CanaryRelease? Canary => Volatile.Read(ref canary);

    /// <summary>How many versions this instance has loaded (downloaded, verified, session created).</summary>
    public int LoadCount => Volatile.Read(ref loads);

    /// <summary>How many published versions this instance refused (failed verification or could not be loaded); a refused ETag is not downloaded again.</summary>
    public int RefusedCount => Volatile.Read(ref refusals);

    /// <summary>How many times <c>current.json</c> was checked (each is one HEAD request, plus a load when it changed).</summary>
    public int CheckCount => Volatile.Read(ref checks);

    /// <summary>The limits every pipeline of this provider enforces.</summary>
    public ImageLimits Limits => limits;

    /// <summary>How often <see cref="ModelRefreshService"/> checks; also the 503 <c>Retry-After</c>.</summary>
    public TimeSpan RefreshInterval => refreshInterval;

    /// <summary>How long a failed load (other than a refusal) is answered from memory.</summary>
    public TimeSpan FailureBackoff => TimeSpan.FromSeconds(Math.Clamp(refreshInterval.TotalSeconds, 1, 5));

    /// <summary>
    /// A lease on the live model. When none is loaded yet, waits for the one shared load (or answers from memory
    /// that nothing is published, until the next check is due). Throws <see cref="ModelUnavailableException"/>
    /// when nothing can be served.
    /// </summary>
    public async Task<ModelLease> AcquireAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        while (true)
        {
            var model = Volatile.Read(ref current);
            if (model is null)
            {
                if (Since(Interlocked.Read(ref failedTicks)) < FailureBackoff)
                {
                    throw Unavailable();
                }
                await SharedCheckAsync().WaitAsync(cancellationToken).ConfigureAwait(false);
                model = Volatile.Read(ref current) ?? throw Unavailable();
            }
            // A version replaced and drained between the read and here has a count of zero: read again.
            if (model.TryAddReference())
            {
                return new ModelLease(model);
            }
        }
    }

    /// <summary>
    /// Checks <c>current.json</c> now (the refresh service, the sweep before it lists anything, tests) and returns the
    /// live model. Storage errors propagate to the caller (the model in memory stays live).
    /// </summary>
    public async Task<LoadedModel?> RefreshAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        await CheckAsync(force: true).WaitAsync(cancellationToken).ConfigureAwait(false);
        return Current;
    }

    /// <summary>
    /// Lets go of the loaded version (the <see cref="ModelRegistry"/>'s memory budget): the provider's own reference is
    /// released, so the pipeline is disposed when the last request holding it ends, never under one. The next request
    /// loads the model again. Returns whether a version was loaded.
    /// </summary>
    public async Task<bool> UnloadAsync()
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        await checkLock.WaitAsync(lifetime.Token).ConfigureAwait(false);
        try
        {
            var old = Interlocked.Exchange(ref current, null);
            liveETag = null;
            Interlocked.Exchange(ref lastCheckTicks, long.MinValue);
            old?.Release();
            return old is not null;
        }
        finally
        {
            checkLock.Release();
        }
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }
        disposed = true;
        lifetime.Cancel();
        Interlocked.Exchange(ref current, null)?.Release();
    }

    private ModelUnavailableException Unavailable() => new(unavailableReason ?? "No model is published yet.", RetryAfter);

    private TimeSpan RetryAfter => refreshInterval > TimeSpan.FromSeconds(1) ? refreshInterval : TimeSpan.FromSeconds(1);

    private TimeSpan Since(long ticks) => ticks == long.MinValue ? TimeSpan.MaxValue : time.GetElapsedTime(ticks);

    /// <summary>The check that waiting callers share: one at a time, on the provider's lifetime, never a caller's token.</summary>
    private Task SharedCheckAsync()
    {
        lock (gate)
        {
            if (sharedCheck is not { IsCompleted: false })
            {
                sharedCheck = CheckAsync(force: false);
            }
            return sharedCheck;
        }
    }

    /// <summary>
    /// One check at a time. Without <paramref name="force"/>, a check is skipped when another finished within the
    /// refresh interval ("nothing published" is answered from memory until the next check is due).
    /// </summary>
    private async Task CheckAsync(bool force)
    {
        var cancellationToken = lifetime.Token;
        await checkLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!force && Since(Interlocked.Read(ref lastCheckTicks)) < refreshInterval)
            {
                return;
            }
            Interlocked.Increment(ref checks);
            try
            {
                await CheckCoreAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (Exception e) when (IsStorageFailure(e) && !cancellationToken.IsCancellationRequested)
            {
                Interlocked.Exchange(ref failedTicks, time.GetTimestamp());
                logger.ModelCheckFailed(e, Current?.Version ?? "no model");
                if (Current is null)
                {
                    unavailableReason = "The model store could not be read; try again later.";
                }
                if (force)
                {
                    throw;
                }
                return;
            }
            Interlocked.Exchange(ref failedTicks, long.MinValue);
            Interlocked.Exchange(ref lastCheckTicks, time.GetTimestamp());
        }
        finally
        {
            checkLock.Release();
        }
    }

    private async Task CheckCoreAsync(CancellationToken cancellationToken)
    {
        var live = Current;
        if (pinnedVersion is not null && live is not null)
        {
            return; // a pinned version never changes
        }
        // Nothing live yet (a starting process): the version this instance served last is made ready from the local cache
        // while current.json is read, and used only if the store confirms it (CachedStart).
        var early = live is null && pinnedVersion is null && cache is not null && startFromCache
            ? CachedStart.Begin(cache, store, ModelPackage.ServingRoles, ReadyFromCache, cancellationToken)
            : null;
        try
        {
            await CheckCoreAsync(live, early, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            early?.Discard(); // no effect once confirmed
        }
    }

    private async Task CheckCoreAsync(LoadedModel? live, CachedStart<ClassificationPipeline>? early, CancellationToken cancellationToken)
    {
        var etag = pinnedVersion is not null ? new ETag(pinnedVersion) : await store.GetCurrentETagAsync(cancellationToken).ConfigureAwait(false);
        if (etag is null)
        {
            if (live is null)
            {
                unavailableReason = "No model is published yet.";
            }
            return;
        }
        if (etag == liveETag || etag == refusedETag)
        {
            return;
        }
        string version = "(unreadable current.json)";
        ClassificationPipeline? pipeline = null;
        CachedModel? cached;
        try
        {
            var pointer = pinnedVersion is not null
                ? new CurrentModel(new CurrentModelPointer(pinnedVersion, DateTimeOffset.MinValue, null), etag.Value)
                : await store.GetCurrentAsync(cancellationToken).ConfigureAwait(false);
            if (pointer is null)
            {
                return;
            }
            version = pointer.State.Version;
            etag = pointer.ETag;
            Volatile.Write(ref canary, pointer.State.Canary);
            if (live is not null && live.Version == version)
            {
                // The pointer was rewritten to the version already live: keep it, remember the new ETag.
                liveETag = etag;
                return;
            }
            (pipeline, cached) = early is null ? (null, null) : await ConfirmEarlyAsync(early, version).ConfigureAwait(false);
            if (pipeline is null)
            {
                (pipeline, cached) = await CreatePipelineAsync(version, cancellationToken).ConfigureAwait(false);
                try
                {
                    pipeline.WarmUp(); // before it goes live: the first request it serves pays no first-use costs
                }
                catch
                {
                    pipeline.Dispose();
                    throw;
                }
            }
        }
        catch (Exception e) when (!IsStorageFailure(e))
        {
            // Anything a candidate does while it is loaded refuses that candidate, whatever its type: an exception
            // that escaped here would end the refresh loop, and with it the host.
            refusedETag = etag;
            Interlocked.Increment(ref refusals);
            if (live is null)
            {
                unavailableReason = $"The published model {version} was refused (it failed verification or could not be loaded); a corrected version must be published.";
            }
            logger.ModelRefused(e, version, e.Message, live?.Version ?? "no model");
            return;
        }
        Interlocked.Increment(ref loads);
        liveETag = etag;
        refusedETag = null;
        Swap(new LoadedModel(version, pipeline, time.GetUtcNow()));
        logger.ModelLive(version, live?.Version ?? "none", pipeline.Manifest.Labels.Count, pipeline.Manifest.Backbone);
        if (cached is not null && pinnedVersion is null)
        {
            cache?.RememberServed(Model, version, cached); // the next process on this instance starts this version early
        }
        var served = pipeline.ServedGraph ?? ServedGraph.Choose(pipeline.Manifest, CpuFeatures.ServingHasInt8DotProduct);
        if (served.Unchecked)
        {
            logger.Int8NeedsDotProduct(version, 8, CpuFeatures.Describe());
        }
        else
        {
            logger.ModelServedGraph(Model, version, served.File.Name, served.Description, served.Reason, CpuFeatures.Describe());
        }
    }

    /// <summary>The started version's pipeline when the store confirms it as <paramref name="version"/>; else (null, null), logged.</summary>
    private async Task<(ClassificationPipeline?, CachedModel?)> ConfirmEarlyAsync(CachedStart<ClassificationPipeline> early, string version)
    {
        var result = await early.ConfirmAsync(version).ConfigureAwait(false);
        if (result is { Started: { } pipeline, Model: { } model })
        {
            logger.ModelCachedStartConfirmed(Model, version, model.OnnxPath);
            LogOptimizedGraph(version, pipeline);
            return (pipeline, model);
        }
        logger.ModelCachedStartDiscarded(Model, early.Version, result.Discarded ?? "unknown", version);
        return (null, null);
    }

    /// <summary>A cached model made ready to serve on the thread pool (<see cref="CachedStart{T}"/>): its pipeline, warmed up.</summary>
    private ClassificationPipeline ReadyFromCache(CachedModel model)
    {
        var pipeline = ClassificationPipeline.CreateServing(model.Package, model.OnnxPath, engineOptions, limits, decoder);
        try
        {
            pipeline.WarmUp();
            return pipeline;
        }
        catch
        {
            pipeline.Dispose();
            throw;
        }
    }

    /// <summary>
    /// The version's pipeline: its graph through the local cache (from disk when cached and intact; ONNX Runtime reads the
    /// file), or downloaded into memory when the cache is off or its folder cannot be used.
    /// </summary>
    private async Task<(ClassificationPipeline, CachedModel?)> CreatePipelineAsync(string version, CancellationToken cancellationToken)
    {
        if (cache is not null)
        {
            CachedModel? cached = null;
            try
            {
                cached = await cache.LoadAsync(store.Files(version), Model, version, ModelPackage.ServingRoles, cancellationToken).ConfigureAwait(false);
            }
            catch (LocalModelCacheException e)
            {
                logger.ModelCacheUnusable(e, Model, version, e.Message);
            }
            if (cached is not null)
            {
                if (cached.Outcome == CacheOutcome.Replaced)
                {
                    logger.ModelCacheFileReplaced(Model, version, cached.OnnxPath);
                }
                else
                {
                    logger.ModelCached(Model, version, cached.Outcome == CacheOutcome.Reused ? "read from" : "downloaded into", cached.OnnxPath);
                }
                var served = ClassificationPipeline.CreateServing(cached.Package, cached.OnnxPath, engineOptions, limits, decoder);
                LogOptimizedGraph(version, served);
                return (served, cached);
            }
        }
        var package = await store.LoadAsync(version, ModelPackage.ServingRoles, cancellationToken).ConfigureAwait(false);
        return (ClassificationPipeline.CreateServing(package, engineOptions, limits, decoder), null);
    }

    private void LogOptimizedGraph(string version, ClassificationPipeline pipeline)
    {
        if (pipeline.Engine is OnnxEngine { OptimizedGraph: var use and not OptimizedGraphUse.None })
        {
            logger.ModelOptimizedGraph(Model, version, use switch
            {
                OptimizedGraphUse.Reused => "created from the optimised graph saved in the local model cache",
                OptimizedGraphUse.Saved => "optimised the graph and saved it in the local model cache for the next start",
                _ => "optimised the graph; the optimised graph could not be saved in or read from the local model cache",
            });
        }
    }

    /// <summary>
    /// A failure of the storage, not of the model, so the next check tries again: a request that failed, a download
    /// that broke off, or a cancellation (the storage SDK's network timeout is one nobody asked for; at shutdown the
    /// callers see their own token). A missing model file (<see cref="FileNotFoundException"/>) is the model's fault.
    /// </summary>
    internal static bool IsStorageFailure(Exception e) =>
        e is RequestFailedException or OperationCanceledException || (e is IOException && e is not FileNotFoundException);

    private void Swap(LoadedModel next)
    {
        if (disposed)
        {
            next.Release();
            return;
        }
        unavailableReason = null;
        Interlocked.Exchange(ref current, next)?.Release();
    }
}
