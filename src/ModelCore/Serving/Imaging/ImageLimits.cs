namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// What <see cref="ImageDecoder"/> accepts. Both limits are checked before any pixel is decoded:
/// the byte count while the input is read, the pixel count from the header.
/// </summary>
public sealed record ImageLimits
{
    /// <summary>
    /// 20 MiB: a 12-megapixel phone JPEG is 3 to 6 MB and a high-quality 48 MP one stays under 15 MB,
    /// while Azure Functions' HTTP front end takes bodies up to 100 MB; anything bigger is not a photo
    /// we should spend a function instance's memory on.
    /// </summary>
    public const long DefaultMaxBytes = 20L * 1024 * 1024;

    /// <summary>
    /// 40 megapixels: above the 12 to 24 MP that phones and most cameras write by default, yet a
    /// decoded 40 MP image is 160 MB as RGBA (120 MB as RGB), so a few concurrent decodes still fit
    /// the 2 GB of a Flex Consumption instance. A 10 KB file can declare 900 MP, so this, not the byte
    /// limit, is what bounds memory.
    /// </summary>
    public const long DefaultMaxPixels = 40_000_000;

    /// <summary>Largest accepted input, in bytes; a stream is read up to one byte more, never further.</summary>
    public long MaxBytes { get; init; } = DefaultMaxBytes;

    /// <summary>Largest accepted width x height, read from the header before decoding.</summary>
    public long MaxPixels { get; init; } = DefaultMaxPixels;

    /// <summary>
    /// Memory ImageSharp's allocator may keep pooled between decodes (its default scales with the
    /// machine's memory, which suits a desktop more than a shared serverless instance). 0: nothing is kept, so
    /// a 12 MP upload's 36 MB of pixels are freed with its answer; with 64, five 12 MP PNG decodes left the
    /// process 57 MB larger after a full garbage collection, with 0 23 MB (docs/benchmarks.md, "Memory").
    /// </summary>
    public int MemoryPoolMegabytes { get; init; }

    /// <summary>The defaults above.</summary>
    public static ImageLimits Default { get; } = new();

    /// <summary>
    /// The largest single buffer the decoder's allocator hands out: twice a full RGBA frame of
    /// <see cref="MaxPixels"/>. A header that passed the pixel check but whose frame data asks for more
    /// (a GIF frame descriptor bigger than its screen, say) fails with an allocation error instead of
    /// allocating gigabytes.
    /// </summary>
    public int AllocationLimitMegabytes => (int)Math.Min(int.MaxValue, Math.Max(16, (MaxPixels * 8 + (1 << 20) - 1) >> 20));

    internal void Validate()
    {
        if (MaxBytes < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, "MaxBytes must be at least 1.");
        }

        if (MaxBytes > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxBytes), MaxBytes, $"MaxBytes must be at most {Array.MaxLength} (one array).");
        }

        if (MaxPixels < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxPixels), MaxPixels, "MaxPixels must be at least 1.");
        }

        if (MemoryPoolMegabytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MemoryPoolMegabytes), MemoryPoolMegabytes, "MemoryPoolMegabytes must not be negative.");
        }
    }
}
