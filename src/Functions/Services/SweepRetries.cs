namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// The images that failed in a sweep, so that the next sweeps pass over them for a while instead of taking them first
/// again: a sweep takes the first items in name order, and without this, as many always-failing images as its per-run
/// bound would keep it from ever reaching the images after them. An image that failed <c>n</c> sweeps in a row is
/// passed over by the next <c>2^(n-1)</c> sweeps (at most <see cref="MaxSweepsPassedOver"/>), then tried again; one
/// that no longer fails is forgotten. Kept in memory, per instance (another instance's sweep, or a restart, tries
/// them again once), for at most <see cref="Capacity"/> images: a failure beyond that is not remembered, and the
/// next sweep takes that image again. An image no sweep has asked about for <see cref="MaxSweepsPassedOver"/> sweeps
/// after its pause ended (deleted, or beyond the per-run bound) is forgotten, so stale entries cannot fill the capacity.
/// </summary>
internal sealed class SweepRetries
{
    public const int Capacity = 10_000;

    /// <summary>64 sweeps: about five hours at the default schedule (every 5 minutes).</summary>
    public const int MaxSweepsPassedOver = 64;

    private readonly Dictionary<string, (int Failures, long RetryAt)> failed = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private long sweep;

    /// <summary>Images remembered as failed.</summary>
    public int Count
    {
        get
        {
            lock (gate)
            {
                return failed.Count;
            }
        }
    }

    /// <summary>Starts a sweep: images whose pause ends with it are tried again; stale entries are forgotten.</summary>
    public void StartSweep()
    {
        lock (gate)
        {
            sweep++;
            var stale = sweep - MaxSweepsPassedOver;
            foreach (var (image, entry) in failed)
            {
                if (entry.RetryAt < stale)
                {
                    failed.Remove(image); // allowed while enumerating a Dictionary since .NET Core 3.0
                }
            }
        }
    }

    /// <summary>True while the image's pause after its last failure lasts.</summary>
    public bool ShouldPassOver(string image)
    {
        lock (gate)
        {
            return failed.TryGetValue(image, out var entry) && entry.RetryAt > sweep;
        }
    }

    public void Failed(string image)
    {
        lock (gate)
        {
            var failures = failed.TryGetValue(image, out var entry) ? entry.Failures + 1 : 1;
            if (failures == 1 && failed.Count >= Capacity)
            {
                return;
            }
            var pause = Math.Min(MaxSweepsPassedOver, 1L << Math.Min(failures - 1, 30));
            failed[image] = (failures, sweep + pause + 1);
        }
    }

    public void Succeeded(string image)
    {
        lock (gate)
        {
            failed.Remove(image);
        }
    }
}
