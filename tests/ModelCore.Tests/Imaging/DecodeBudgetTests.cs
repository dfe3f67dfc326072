using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Tests.Imaging;

/// <summary>
/// The process-wide decode budget, measured through its own counters (never by timing): concurrent decodes of
/// 12-megapixel JPEGs and PNGs through the real decoder never hold more than the stated bound, and all complete.
/// </summary>
public sealed class DecodeBudgetTests
{
    private const int Width = 4000;
    private const int Height = 3000;
    private const long Pixels = (long)Width * Height;

    /// <summary>The bound under test: two full 12 MP JPEG decodes (36 MB each) fit, a JPEG and a PNG (84 MB) do not.</summary>
    private const long Bound = 100_000_000;

    private static readonly Lazy<byte[]> Jpeg12 = new(() => Encode(new JpegEncoder { Quality = 85 }));
    private static readonly Lazy<byte[]> Png12 = new(() => Encode(new PngEncoder { CompressionLevel = PngCompressionLevel.BestSpeed }));

    [Fact]
    public async Task ConcurrentDecodesOf12MegapixelImages_NeverHoldMoreThanTheBound_AndAllComplete()
    {
        var budget = new DecodeBudget(Bound);
        var decoder = new ImageDecoder(ImageLimits.Default, budget);
        // 6 full JPEG decodes (36 MB), 6 PNG (84 MB: RGBA then RGB), 6 JPEG at 1/4 scale as classification asks (11 B/px at 1000x750).
        var work = Enumerable.Range(0, 18).Select(i => (i % 3) switch
        {
            0 => (Data: Jpeg12.Value, MinShorterSide: 0, Size: (Width, Height), Cost: Pixels * 3),
            1 => (Data: Png12.Value, MinShorterSide: 0, Size: (Width, Height), Cost: Pixels * 7),
            _ => (Data: Jpeg12.Value, MinShorterSide: 448, Size: (1000, 750), Cost: 1000L * 750 * 11),
        }).ToList();
        long heldInUse = 0;

        // Everything else in the process holds the whole budget while the decodes are started, so all of them must queue
        // (each call returns at its first wait, after the header checks); then it lets go and they run.
        var others = budget.Acquire(Bound);
        var decodes = work.Select(w => decoder.DecodeAsync(w.Data, w.MinShorterSide, image =>
        {
            var inUse = budget.InUseBytes;
            InterlockedMax(ref heldInUse, inUse);
            return (image.Width, image.Height);
        }, CancellationToken.None)).ToList();
        Assert.Equal(work.Count, budget.Waiting);
        Assert.True(work.Sum(w => w.Cost) > 3 * Bound); // the demand is well over the bound
        others.Dispose();

        var sizes = await Task.WhenAll(decodes);

        Assert.Equal(work.Select(w => w.Size), sizes);
        Assert.True(budget.PeakBytes <= Bound, $"peak {budget.PeakBytes} bytes charged at once, over the {Bound}-byte bound");
        Assert.True(Interlocked.Read(ref heldInUse) <= Bound);
        Assert.Equal(0, budget.InUseBytes);
        Assert.Equal(0, budget.Waiting);
        Assert.Equal(work.Count + 1, budget.Grants);
        Assert.Equal(Bound + work.Sum(w => w.Cost), budget.GrantedBytes); // each decode was charged its stated cost
    }

    [Fact]
    public async Task AnImageCostingMoreThanTheWholeBudget_StillDecodes_Alone()
    {
        var budget = new DecodeBudget(4_000_000);
        var decoder = new ImageDecoder(ImageLimits.Default, budget);
        var jpeg = Encode(new JpegEncoder(), 2000, 1500); // 9 MB of RGB: over the budget, within ImageLimits

        var other = budget.Acquire(1);
        var decode = decoder.DecodeAsync(jpeg, 0, image => image.Width, CancellationToken.None);
        Assert.Equal(1, budget.Waiting); // it waits for everything else to finish, not only for its share
        other.Dispose();

        Assert.Equal(2000, await decode);
        Assert.Equal(budget.MaxBytes, budget.PeakBytes);
        Assert.Equal(0, budget.InUseBytes);
    }

    [Fact]
    public async Task ADecodeWaitingForTheBudget_IsCancelled_AndGivesUpItsPlace()
    {
        var budget = new DecodeBudget(Bound);
        var decoder = new ImageDecoder(ImageLimits.Default, budget);
        var others = budget.Acquire(Bound);
        using var cancel = new CancellationTokenSource();

        var decode = decoder.DecodeAsync(Jpeg12.Value, 0, image => image.Width, cancel.Token);
        Assert.Equal(1, budget.Waiting);
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decode);
        Assert.Equal(0, budget.Waiting);
        others.Dispose();
        Assert.Equal(0, budget.InUseBytes);
        Assert.Equal(1, budget.Grants);
    }

    [Fact]
    public void ADecoderWithABudget_RefusesADecodeWhoseImageWouldOutliveTheCharge()
    {
        var decoder = new ImageDecoder(ImageLimits.Default, new DecodeBudget());
        Assert.Throws<InvalidOperationException>(() => decoder.Decode(Jpeg12.Value, 0));
    }

    [Fact]
    public void Thumbnail_Of12MegapixelJpeg_IsDecodedAtOneEighthScale()
    {
        var budget = new DecodeBudget();
        var decoder = new ImageDecoder(ImageLimits.Default, budget);

        using var thumbnail = Image.Load<Rgb24>(Thumbnail.Jpeg(decoder, Jpeg12.Value));

        Assert.Equal((Thumbnail.DefaultSize, 120), (thumbnail.Width, thumbnail.Height));
        Assert.Equal(1, budget.Grants);
        Assert.Equal(500L * 375 * 11, budget.GrantedBytes); // 500x375 decoded (1/8 scale), not 4000x3000 (36 MB)
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var seen = Interlocked.Read(ref target);
        while (value > seen)
        {
            var previous = Interlocked.CompareExchange(ref target, value, seen);
            if (previous == seen)
            {
                return;
            }
            seen = previous;
        }
    }

    private static byte[] Encode(SixLabors.ImageSharp.Formats.IImageEncoder encoder, int width = Width, int height = Height)
    {
        using var image = new Image<Rgb24>(width, height);
        image.ProcessPixelRows(rows =>
        {
            for (var y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                for (var x = 0; x < row.Length; x++)
                {
                    row[x] = new Rgb24((byte)(x * 255 / width), (byte)(y * 255 / height), (byte)((x + y) & 0xFF));
                }
            }
        });
        using var stream = new MemoryStream();
        image.Save(stream, encoder);
        return stream.ToArray();
    }
}
