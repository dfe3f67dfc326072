namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// Rows of features (<see cref="Width"/> values each) that stay in the arrays they were computed into: the
/// training split's array then the validation split's, say, read as one matrix without concatenating them.
/// The fits on features (the linear probe, the out-of-distribution statistics) read rows from here, so no
/// step of training holds a second whole copy of the features.
/// </summary>
internal sealed class FeatureRows
{
    private readonly float[][] parts;
    private readonly int[] firstRows;

    public FeatureRows(int width, params float[][] parts)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        this.parts = parts;
        firstRows = new int[parts.Length];
        var count = 0;
        for (var p = 0; p < parts.Length; p++)
        {
            if (parts[p].Length % width != 0)
            {
                throw new ArgumentException($"Part {p} has {parts[p].Length} values: not whole rows of {width} features.", nameof(parts));
            }
            firstRows[p] = count;
            count += parts[p].Length / width;
        }
        Width = width;
        Count = count;
    }

    public int Width { get; }

    public int Count { get; }

    /// <summary>The arrays the rows live in, in order.</summary>
    public IReadOnlyList<float[]> Parts => parts;

    /// <summary>Which array row <paramref name="index"/> lives in, and its row within that array.</summary>
    public (int Part, int Row) Locate(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, Count);
        var p = parts.Length - 1;
        while (firstRows[p] > index)
        {
            p--;
        }
        return (p, index - firstRows[p]);
    }

    /// <summary>Row <paramref name="index"/> (0 .. Count - 1), in place.</summary>
    public ReadOnlySpan<float> Row(int index)
    {
        var (part, row) = Locate(index);
        return parts[part].AsSpan(row * Width, Width);
    }

    /// <summary>These rows followed by <paramref name="next"/>'s (same width), still without a copy.</summary>
    public FeatureRows Then(FeatureRows next)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(next.Width, Width);
        return new FeatureRows(Width, [.. parts, .. next.parts]);
    }
}
