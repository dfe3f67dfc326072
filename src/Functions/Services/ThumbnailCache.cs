namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// Review thumbnails made on this instance, keyed by image name and version (an overwritten image is a new key), least
/// recently used dropped first once their bytes pass <see cref="MaxBytes"/>. In memory only: each instance makes a
/// version's thumbnail once, a cold instance again. Two first requests for the same version at the same moment may both
/// make it. Thread-safe.
/// </summary>
public sealed class ThumbnailCache(long maxBytes)
{
    private readonly Lock gate = new();
    private readonly Dictionary<(string Image, string Version), LinkedListNode<Entry>> entries = [];
    private readonly LinkedList<Entry> recent = new();
    private long bytes;

    public long MaxBytes { get; } = maxBytes >= 0 ? maxBytes : throw new ArgumentOutOfRangeException(nameof(maxBytes), maxBytes, "must not be negative");

    /// <summary>Bytes held now.</summary>
    public long Bytes { get { lock (gate) { return bytes; } } }

    public bool TryGet(string image, string version, out byte[] jpeg)
    {
        lock (gate)
        {
            if (entries.TryGetValue((image, version), out var node))
            {
                recent.Remove(node);
                recent.AddFirst(node);
                jpeg = node.Value.Jpeg;
                return true;
            }
        }
        jpeg = [];
        return false;
    }

    public void Add(string image, string version, byte[] jpeg)
    {
        ArgumentNullException.ThrowIfNull(jpeg);
        if (jpeg.Length > MaxBytes)
        {
            return;
        }
        lock (gate)
        {
            if (entries.ContainsKey((image, version)))
            {
                return;
            }
            entries[(image, version)] = recent.AddFirst(new Entry(image, version, jpeg));
            bytes += jpeg.Length;
            while (bytes > MaxBytes && recent.Last is { } oldest)
            {
                recent.RemoveLast();
                entries.Remove((oldest.Value.Image, oldest.Value.Version));
                bytes -= oldest.Value.Jpeg.Length;
            }
        }
    }

    private sealed record Entry(string Image, string Version, byte[] Jpeg);
}
