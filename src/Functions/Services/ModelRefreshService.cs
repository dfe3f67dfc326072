using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// Keeps <see cref="ModelProvider"/> current in the background of the worker: loads the live model at startup (so the
/// first request finds it ready, or in flight), then checks <c>current.json</c> every
/// <see cref="ModelProvider.RefreshInterval"/> (a HEAD request; a download only when its ETag changed). Swaps and
/// refusals are logged here, outside any request, so they reach the host's log and Application Insights. Nothing but
/// shutdown ends the loop: an exception escaping a background service stops the host, and with it the live model.
/// The named models this instance has loaded (<see cref="ModelRegistry"/>) are checked on the same tick, each on its own.
/// The first load starts as early as the host allows: in <see cref="StartingAsync"/>, which the host calls before it starts
/// any hosted service (the Functions worker's own connection to the host included), not when this service's turn comes.
/// </summary>
public sealed class ModelRefreshService(ModelProvider models, ILogger<ModelRefreshService> logger, TimeProvider? time = null, ModelRegistry? named = null)
    : BackgroundService, IHostedLifecycleService
{
    private Task? firstLoad;

    /// <summary>Starts the first load on the thread pool (it runs on the provider's own lifetime, not a caller's); <see cref="ExecuteAsync"/> awaits it.</summary>
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        firstLoad = Task.Run(() => models.RefreshAsync(CancellationToken.None), CancellationToken.None);
        return Task.CompletedTask;
    }

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>The shortest pause between checks, whatever the setting (0 means "check on every request" in tests).</summary>
    public static readonly TimeSpan MinimumInterval = TimeSpan.FromSeconds(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = models.RefreshInterval < MinimumInterval ? MinimumInterval : models.RefreshInterval;
        logger.RefreshStarted(interval);
        using var timer = new PeriodicTimer(interval, time ?? TimeProvider.System);
        do
        {
            try
            {
                var started = Interlocked.Exchange(ref firstLoad, null);
                await (started is null ? models.RefreshAsync(stoppingToken) : started.WaitAsync(stoppingToken)).ConfigureAwait(false);
                if (named is not null)
                {
                    // Each loaded named model checks its own current.json and swaps on its own.
                    await named.RefreshLoadedAsync(stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (ModelProvider.IsStorageFailure(e))
            {
                // Logged by the provider; the live model (if any) stays, the next tick tries again.
            }
            catch (Exception e)
            {
                // The provider refuses whatever a candidate model throws; this is for a fault of its own.
                logger.RefreshFailed(e);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
