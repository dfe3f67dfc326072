using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// The design matrix of one fit: the chosen rows of the float32 features, standardised, as float64, made a block
/// of rows at a time and dropped after use. The whole matrix (rows x width doubles: 98 MB for 16,000 images of 768
/// features, one per fold) is never held, so the probe's memory beyond the features themselves does not grow with
/// the data set. Each pass gathers, widens and standardises the rows again in libtorch (vectorised, on every core),
/// straight from the features' arrays.
/// </summary>
internal sealed class StandardizedRows
{
    /// <summary>Rows per block: 6 MB of doubles at 768 features, and enough rows for the products to run at full speed.</summary>
    public const int DefaultBlockRows = 1024;

    /// <summary>
    /// A fit holds its standardised blocks for its whole run (<see cref="Hold"/>) while they are at most this many values
    /// (32 MB of doubles: 5,200 rows of 768 features); larger designs are made again on every pass, as before. On small
    /// data a pass's products are cheap and remaking the blocks (gather, widen, standardise) was most of a fit's time.
    /// </summary>
    public const long HeldValues = 4L << 20;

    private readonly FeatureRows features;
    private readonly FeatureStandardizer standardizer;
    private readonly List<(int Part, long[] Rows)> blocks = [];
    private List<(int First, Tensor Block)>? held;

    /// <param name="rows">Indices into <paramref name="features"/>, in the order of the matrix's rows.</param>
    /// <param name="blockRows">Rows per block at most (tests use small blocks to check that blocking changes nothing).</param>
    public StandardizedRows(FeatureRows features, FeatureStandardizer standardizer, IReadOnlyList<int> rows, int blockRows = DefaultBlockRows)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(standardizer.Mean.Length, features.Width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockRows);
        this.features = features;
        this.standardizer = standardizer;
        Count = rows.Count;
        // Consecutive rows of one array form a block (a block never spans two arrays), up to blockRows of them.
        var current = new List<long>();
        var part = -1;
        foreach (var index in rows)
        {
            var (p, row) = features.Locate(index);
            if (p != part || current.Count == blockRows)
            {
                if (current.Count > 0)
                {
                    blocks.Add((part, [.. current]));
                }
                (part, current) = (p, []);
            }
            current.Add(row);
        }
        if (current.Count > 0)
        {
            blocks.Add((part, [.. current]));
        }
    }

    public int Count { get; }

    public int Width => features.Width;

    /// <summary>
    /// Calls <paramref name="visit"/> with each block in order: the position of its first row and a float64
    /// [rows, width] tensor, disposed (with whatever else visit made in it) when visit returns.
    /// </summary>
    public void ForEachBlock(Action<int, Tensor> visit)
    {
        if (held is not null)
        {
            foreach (var (first, block) in held)
            {
                using var scope = NewDisposeScope();
                visit(first, block);
            }
            return;
        }
        var d = features.Width;
        using var outer = NewDisposeScope();
        var mean = tensor(standardizer.Mean, float64);
        var std = tensor(standardizer.Std, float64);
        var start = 0;
        foreach (var (part, rows) in blocks)
        {
            using var scope = NewDisposeScope();
            var array = features.Parts[part];
            // The array as a tensor that shares its memory (frombuffer: torch.tensor would clone the whole array), its
            // chosen rows gathered, widened and standardised.
            var block = frombuffer(array, float32).view(array.Length / d, d).index_select(0, tensor(rows)).to(float64).sub_(mean).div_(std);
            visit(start, block);
            start += rows.Length;
        }
    }

    /// <summary>
    /// Makes the standardised blocks once and keeps them for every <see cref="ForEachBlock"/> until the returned object is
    /// disposed, when they are at most <see cref="HeldValues"/> values (the same values as made per pass: a fit's result
    /// does not change); otherwise nothing is held.
    /// </summary>
    public IDisposable Hold()
    {
        if (held is not null || (long)Count * Width > HeldValues)
        {
            return new Release(null);
        }
        var made = new List<(int First, Tensor Block)>();
        using (var scope = NewDisposeScope())
        {
            var d = features.Width;
            var mean = tensor(standardizer.Mean, float64);
            var std = tensor(standardizer.Std, float64);
            var start = 0;
            foreach (var (part, rows) in blocks)
            {
                var array = features.Parts[part];
                var block = frombuffer(array, float32).view(array.Length / d, d).index_select(0, tensor(rows)).to(float64).sub_(mean).div_(std);
                made.Add((start, block.DetachFromDisposeScope()));
                start += rows.Length;
            }
        }
        held = made;
        return new Release(this);
    }

    private sealed class Release(StandardizedRows? rows) : IDisposable
    {
        public void Dispose()
        {
            if (rows?.held is { } blocks)
            {
                rows.held = null;
                foreach (var (_, block) in blocks)
                {
                    block.Dispose();
                }
            }
        }
    }
}
