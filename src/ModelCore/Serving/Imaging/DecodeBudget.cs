namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// One process-wide bound on the pixel memory of decodes in progress: a weighted, first-come first-served
/// semaphore over <see cref="MaxBytes"/>. <see cref="ImageDecoder"/> charges each decode, before any pixel is
/// decoded, the bytes of the pixel buffers it will hold (<see cref="ImageDecoder.DecodeCost"/>, from the header)
/// and returns them when the decoded image is disposed. A decode that does not fit waits (cancellably) until
/// enough earlier ones finish; one that costs more than the whole budget is charged the whole budget, so it runs
/// alone rather than never. So the charged bytes in use never exceed <see cref="MaxBytes"/>.
/// Thread-safe; share one per process.
/// </summary>
public sealed class DecodeBudget
{
    /// <summary>
    /// 256 MiB: seven full 12 MP JPEG decodes (36 MB each) or three 12 MP PNG decodes (84 MB each, RGBA and RGB),
    /// or about thirty 12 MP JPEGs decoded at 1/4 scale for classification, within the 2 GB of a Flex Consumption
    /// instance that also holds the model, the runtime and the request bodies.
    /// </summary>
    public const long DefaultMaxBytes = 256L * 1024 * 1024;

    private readonly Lock gate = new();
    private readonly LinkedList<Waiter> queue = new();
    private long inUse;
    private long peak;
    private long grants;
    private long granted;
    private long waited;

    public DecodeBudget(long maxBytes = DefaultMaxBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        MaxBytes = maxBytes;
    }

    /// <summary>The bound: charged bytes in use never exceed it.</summary>
    public long MaxBytes { get; }

    /// <summary>Bytes charged to decodes in progress (decoded images not yet disposed).</summary>
    public long InUseBytes { get { lock (gate) { return inUse; } } }

    /// <summary>The most bytes ever charged at once.</summary>
    public long PeakBytes { get { lock (gate) { return peak; } } }

    /// <summary>Decodes admitted so far.</summary>
    public long Grants { get { lock (gate) { return grants; } } }

    /// <summary>Bytes charged over all admitted decodes.</summary>
    public long GrantedBytes { get { lock (gate) { return granted; } } }

    /// <summary>Admissions that had to wait for others to finish.</summary>
    public long Waited { get { lock (gate) { return waited; } } }

    /// <summary>Decodes waiting now.</summary>
    public int Waiting { get { lock (gate) { return queue.Count; } } }

    /// <summary>
    /// Admits a decode costing <paramref name="bytes"/> (capped at <see cref="MaxBytes"/>) once it fits behind
    /// those already waiting; dispose the lease when its pixels are freed. Cancelling gives up the place in line.
    /// </summary>
    public async ValueTask<Lease> AcquireAsync(long bytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        cancellationToken.ThrowIfCancellationRequested();
        var charge = Math.Min(bytes, MaxBytes);
        Waiter waiter;
        lock (gate)
        {
            if (queue.Count == 0 && inUse + charge <= MaxBytes)
            {
                Take(charge);
                return new Lease(this, charge);
            }
            waiter = new Waiter(charge);
            waiter.Node = queue.AddLast(waiter);
            waited++;
        }
        using (cancellationToken.Register(() => Cancel(waiter, cancellationToken)))
        {
            await waiter.Completion.Task.ConfigureAwait(false);
        }
        return new Lease(this, charge);
    }

    /// <summary>Blocking form of <see cref="AcquireAsync"/>, for synchronous callers (the CLI, tests).</summary>
    public Lease Acquire(long bytes, CancellationToken cancellationToken = default) =>
        AcquireAsync(bytes, cancellationToken).AsTask().GetAwaiter().GetResult();

    private void Take(long charge)
    {
        inUse += charge;
        peak = Math.Max(peak, inUse);
        grants++;
        granted += charge;
    }

    private void Cancel(Waiter waiter, CancellationToken cancellationToken)
    {
        lock (gate)
        {
            if (waiter.Node?.List is null)
            {
                return; // already admitted: the caller gets its lease and releases it
            }
            queue.Remove(waiter.Node);
            waiter.Completion.TrySetCanceled(cancellationToken);
            AdmitWaiting(); // the head may have been what held the others back
        }
    }

    private void Release(long charge)
    {
        lock (gate)
        {
            inUse -= charge;
            AdmitWaiting();
        }
    }

    // Called under the lock. In order: a large decode at the head is not overtaken by small ones forever.
    private void AdmitWaiting()
    {
        while (queue.First is { } head && inUse + head.Value.Charge <= MaxBytes)
        {
            queue.RemoveFirst();
            Take(head.Value.Charge);
            head.Value.Completion.TrySetResult(); // continuations run asynchronously, never under the lock
        }
    }

    /// <summary>Bytes charged to one decode; disposing returns them (once).</summary>
    public sealed class Lease : IDisposable
    {
        private DecodeBudget? budget;

        internal Lease(DecodeBudget budget, long bytes)
        {
            this.budget = budget;
            Bytes = bytes;
        }

        public long Bytes { get; }

        public void Dispose() => Interlocked.Exchange(ref budget, null)?.Release(Bytes);
    }

    private sealed class Waiter(long charge)
    {
        public long Charge { get; } = charge;

        public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }
    }
}
