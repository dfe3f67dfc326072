using Azure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>No model can be served: none is published yet, or the published one was refused. HTTP 503.</summary>
public sealed class ModelUnavailableException(string message, TimeSpan retryAfter) : Exception(message)
{
    /// <summary>When asking again may help (the refresh interval).</summary>
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>
/// One loaded model version: its pipeline and a reference count. The provider holds one reference while
/// the version is live; every user holds one through a <see cref="ModelLease"/>. The pipeline (the ONNX
/// Runtime session) is disposed when the count reaches zero, i.e. after the version was replaced AND the
/// last request using it finished, never under a running forward pass.
/// </summary>
public sealed class LoadedModel
{
    private int references = 1;

    internal LoadedModel(string version, ClassificationPipeline pipeline, DateTimeOffset loadedUtc)
    {
        Version = version;
        Pipeline = pipeline;
        LoadedUtc = loadedUtc;
    }

    public string Version { get; }

    public ClassificationPipeline Pipeline { get; }

    public ModelManifest Manifest => Pipeline.Manifest;

    public DateTimeOffset LoadedUtc { get; }

    /// <summary>True once the pipeline has been disposed (for tests and diagnostics).</summary>
    public bool IsDisposed => Volatile.Read(ref references) == 0;

    /// <summary>Takes a reference unless the count already reached zero (the pipeline is gone).</summary>
    internal bool TryAddReference()
    {
        while (true)
        {
            var current = Volatile.Read(ref references);
            if (current == 0)
            {
                return false;
            }
            if (Interlocked.CompareExchange(ref references, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    /// <summary>Takes a reference when the caller already holds one (so the count cannot be zero).</summary>
    internal void AddReference()
    {
        if (!TryAddReference())
        {
            throw new InvalidOperationException($"Model {Version} was used after it was released.");
        }
    }

    internal void Release()
    {
        var left = Interlocked.Decrement(ref references);
        if (left == 0)
        {
            Pipeline.Dispose();
        }
        else if (left < 0)
        {
            throw new InvalidOperationException($"Model {Version} was released more often than acquired.");
        }
    }
}

/// <summary>A request's hold on a model version; dispose it when the request no longer needs the model.</summary>
public sealed class ModelLease : IDisposable
{
    private LoadedModel? model;

    internal ModelLease(LoadedModel model) => this.model = model;

    public LoadedModel Model => model ?? throw new ObjectDisposedException(nameof(ModelLease));

    public string Version => Model.Version;

    public ClassificationPipeline Pipeline => Model.Pipeline;

    public void Dispose() => Interlocked.Exchange(ref model, null)?.Release();
}

/// <summary>
/// The live model of this instance (docs/architecture.md, "Serving"): loaded from the <see cref="ModelStore"/> on first
/// use (concurrent first requests wait for ONE load), then <c>current.json</c>'s ETag is checked at most once
/// per <see cref="ClassifierOptions.ModelRefreshInterval"/> (a HEAD request, in the background of the request
/// that finds it due). A new version is loaded and verified beside the old one, then swapped in with one
/// <see cref="Interlocked.Exchange{T}(ref T, T)"/>; the old one is disposed by reference counting once its
/// last request ends. A version that fails verification is refused, the old one stays live, and the refused
/// ETag is remembered so that the same bad version is not downloaded again at every check.
/// </summary>
public sealed class ModelProvider : IDisposable
{
    private readonly ModelStore store;
    private readonly ILogger<ModelProvider> logger;
    private readonly TimeProvider time;
    private readonly TimeSpan refreshInterval;
    private readonly OnnxEngineOptions engineOptions;
    private readonly ImageLimits limits;
    private readonly SemaphoreSlim checkLock = new(1, 1);

    private LoadedModel? current;
    private long lastCheckTicks = long.MinValue;
    private ETag? liveETag;
    private ETag? refusedETag;
    private string? unavailableReason;
    private int backgroundCheckRunning;
    private int loads;
    private int refusals;
    private bool disposed;

    public ModelProvider(ModelStore store, IOptions<ClassifierOptions> options, ILogger<ModelProvider> logger, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(options);
        this.store = store;
        this.logger = logger;
        this.time = time ?? TimeProvider.System;
        var settings = options.Value;
        refreshInterval = settings.ModelRefreshInterval;
        limits = settings.ToImageLimits();
        engineOptions = new OnnxEngineOptions
        {
            IntraOpThreads = settings.IntraOpThreads ?? OnnxEngineOptions.Default.IntraOpThreads,
            InterOpThreads = settings.InterOpThreads,
        };
    }

    /// <summary>The live version, or null before the first load (never blocks, never calls storage).</summary>
    public LoadedModel? Current => Volatile.Read(ref current);

    /// <summary>How many versions this instance has loaded (downloaded, verified, session created).</summary>
    public int LoadCount => Volatile.Read(ref loads);

    /// <summary>How many published versions this instance refused (failed verification); a refused ETag is not downloaded again.</summary>
    public int RefusedCount => Volatile.Read(ref refusals);

    /// <summary>The limits every pipeline of this provider enforces.</summary>
    public ImageLimits Limits => limits;

    /// <summary>
    /// A lease on the live model. Loads it on first use; afterwards returns at once and, when a check is
    /// due, starts one in the background. Throws <see cref="ModelUnavailableException"/> when nothing can be served.
    /// </summary>
    public async Task<ModelLease> AcquireAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(disposed, this);
        while (true)
        {
            var model = Volatile.Read(ref current);
            if (model is null)
            {
                await CheckAsync(force: false, cancellationToken).ConfigureAwait(false);
                model = Volatile.Read(ref current)
                    ?? throw new ModelUnavailableException(unavailableReason ?? "No model is published yet.", RetryAfter);
            }
            else if (IsCheckDue())
            {
                StartBackgroundCheck();
            }
            // A version replaced and drained between the read and here has a count of zero: read again.
            if (model.TryAddReference())
            {
                return new ModelLease(model);
            }
        }
    }

    /// <summary>Checks <c>current.json</c> now (tests, and the sweep before it lists anything); returns the live model.</summary>
    public async Task<LoadedModel?> RefreshAsync(CancellationToken cancellationToken = default)
    {
        await CheckAsync(force: true, cancellationToken).ConfigureAwait(false);
        return Current;
    }

    public void Dispose()
    {
        if (disposed)
        {
            return;
        }
        disposed = true;
        Interlocked.Exchange(ref current, null)?.Release();
        checkLock.Dispose();
    }

    private TimeSpan RetryAfter => refreshInterval > TimeSpan.FromSeconds(1) ? refreshInterval : TimeSpan.FromSeconds(1);

    private bool IsCheckDue() => time.GetTimestamp() - Interlocked.Read(ref lastCheckTicks) >= refreshInterval.TotalSeconds * time.TimestampFrequency
        || Interlocked.Read(ref lastCheckTicks) == long.MinValue;

    private void StartBackgroundCheck()
    {
        if (Interlocked.CompareExchange(ref backgroundCheckRunning, 1, 0) != 0)
        {
            return;
        }
        _ = Task.Run(async () =>
        {
            try
            {
                await CheckAsync(force: false, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception e) when (e is RequestFailedException or IOException or OperationCanceledException or ObjectDisposedException)
            {
                logger.ModelCheckFailed(e, Current?.Version ?? "no model");
            }
            finally
            {
                Volatile.Write(ref backgroundCheckRunning, 0);
            }
        });
    }

    /// <summary>
    /// One check at a time. Without <paramref name="force"/>, a check is skipped when another finished within
    /// the refresh interval (so the first requests of a cold instance wait for one load, then all use it, and
    /// "nothing published" is answered from memory until the next check is due).
    /// </summary>
    private async Task CheckAsync(bool force, CancellationToken cancellationToken)
    {
        await checkLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!force && !IsCheckDue())
            {
                return;
            }
            await CheckCoreAsync(cancellationToken).ConfigureAwait(false);
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
        var etag = await store.GetCurrentETagAsync(cancellationToken).ConfigureAwait(false);
        if (etag is null)
        {
            if (live is null)
            {
                unavailableReason = $"No model is published yet: {store.Container.Uri}/{ModelStore.PointerBlobName} does not exist.";
            }
            return;
        }
        if (etag == liveETag || etag == refusedETag)
        {
            return;
        }
        var pointer = await store.GetCurrentAsync(cancellationToken).ConfigureAwait(false);
        if (pointer is null)
        {
            return;
        }
        var version = pointer.State.Version;
        if (live is not null && live.Version == version)
        {
            // The pointer was rewritten to the version already live: keep it, remember the new ETag.
            liveETag = pointer.ETag;
            return;
        }
        ClassificationPipeline pipeline;
        try
        {
            var package = await store.LoadAsync(version, ModelPackage.ServingRoles, cancellationToken).ConfigureAwait(false);
            pipeline = ClassificationPipeline.CreateServing(package, engineOptions, limits);
        }
        catch (Exception e) when (e is ModelIntegrityException or ModelFormatException or InvalidDataException or FileNotFoundException)
        {
            refusedETag = pointer.ETag;
            Interlocked.Increment(ref refusals);
            if (live is null)
            {
                unavailableReason = $"The published model {version} was refused: {e.Message}";
            }
            logger.ModelRefused(e, version, e.Message, live?.Version ?? "no model");
            return;
        }
        Interlocked.Increment(ref loads);
        liveETag = pointer.ETag;
        refusedETag = null;
        Swap(new LoadedModel(version, pipeline, time.GetUtcNow()));
        logger.ModelLive(version, live?.Version ?? "none", pipeline.Manifest.Labels.Count, pipeline.Manifest.Backbone);
    }

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
