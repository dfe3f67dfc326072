namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>How an int8 graph compares with the fp32 model it came from on labelled images.</summary>
/// <param name="Images">Images both were compared on.</param>
/// <param name="Fp32Correct">Images the fp32 model labelled correctly.</param>
/// <param name="Int8Correct">Images the int8 graph labelled correctly.</param>
/// <param name="Agreeing">Images whose top-1 label is the same under both.</param>
/// <param name="MaxProbabilityDifference">Largest |p_int8 - p_fp32| over every class of every image.</param>
/// <param name="OnlyFp32Correct">Images fp32 labelled correctly and int8 did not.</param>
/// <param name="OnlyInt8Correct">Images int8 labelled correctly and fp32 did not.</param>
public sealed record PrecisionComparison(int Images, int Fp32Correct, int Int8Correct, int Agreeing, double MaxProbabilityDifference, int OnlyFp32Correct = 0, int OnlyInt8Correct = 0)
{
    /// <summary>z of a two-sided 95 % interval.</summary>
    private const double Z = 1.959964;

    public double Fp32Accuracy => Images == 0 ? 0 : (double)Fp32Correct / Images;

    public double Int8Accuracy => Images == 0 ? 0 : (double)Int8Correct / Images;

    public double Top1Agreement => Images == 0 ? 0 : (double)Agreeing / Images;

    /// <summary>fp32 accuracy minus int8 accuracy, in percentage points.</summary>
    public double AccuracyDropPoints => (Fp32Accuracy - Int8Accuracy) * 100;

    /// <summary>95 % Wilson score interval of the fraction of images whose top-1 label differs (1 - agreement).</summary>
    public (double Low, double High) DisagreementInterval
    {
        get
        {
            if (Images == 0)
            {
                return (0, 1);
            }
            double n = Images, p = (Images - Agreeing) / n, z2 = Z * Z;
            var centre = (p + (z2 / (2 * n))) / (1 + (z2 / n));
            var half = Z * Math.Sqrt((p * (1 - p) / n) + (z2 / (4 * n * n))) / (1 + (z2 / n));
            return (Math.Max(0, centre - half), Math.Min(1, centre + half));
        }
    }

    /// <summary>
    /// 95 % interval of <see cref="AccuracyDropPoints"/>, in points: the paired difference (b - c) / n of the images only one
    /// of the two got right, with its normal-approximation variance (b + c - (b - c)^2 / n) / n^2 (McNemar's setting).
    /// </summary>
    public (double Low, double High) AccuracyDropInterval
    {
        get
        {
            if (Images == 0)
            {
                return (double.NegativeInfinity, double.PositiveInfinity);
            }
            double n = Images, b = OnlyFp32Correct, c = OnlyInt8Correct;
            var half = Z * Math.Sqrt(Math.Max(0, b + c - ((b - c) * (b - c) / n))) / n * 100;
            return (AccuracyDropPoints - half, AccuracyDropPoints + half);
        }
    }
}

/// <summary>Counts how the int8 graph's answers compare with the fp32 model's on the same images (the int8 check of <see cref="ServingGraphs"/>).</summary>
public sealed class PrecisionCheck
{
    private int images;
    private int fp32Correct;
    private int int8Correct;
    private int agreeing;
    private int onlyFp32;
    private int onlyInt8;
    private double worst;

    /// <summary>Adds images: both precisions' probabilities (rows x classes) and the label indices.</summary>
    public void Add(ReadOnlySpan<float> fp32Probabilities, ReadOnlySpan<float> int8Probabilities, int classes, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentOutOfRangeException.ThrowIfNotEqual(fp32Probabilities.Length, labels.Count * classes);
        ArgumentOutOfRangeException.ThrowIfNotEqual(int8Probabilities.Length, labels.Count * classes);
        for (var i = 0; i < labels.Count; i++)
        {
            var p32 = fp32Probabilities.Slice(i * classes, classes);
            var p8 = int8Probabilities.Slice(i * classes, classes);
            var top32 = ArgMax(p32);
            var top8 = ArgMax(p8);
            var right32 = top32 == labels[i];
            var right8 = top8 == labels[i];
            fp32Correct += right32 ? 1 : 0;
            int8Correct += right8 ? 1 : 0;
            onlyFp32 += right32 && !right8 ? 1 : 0;
            onlyInt8 += right8 && !right32 ? 1 : 0;
            agreeing += top32 == top8 ? 1 : 0;
            for (var c = 0; c < classes; c++)
            {
                worst = Math.Max(worst, Math.Abs(p32[c] - p8[c]));
            }
        }
        images += labels.Count;
    }

    public PrecisionComparison Result => new(images, fp32Correct, int8Correct, agreeing, worst, onlyFp32, onlyInt8);

    /// <summary>The first index of the largest value (ties go to the lower class, as the serving pipeline's ranking).</summary>
    private static int ArgMax(ReadOnlySpan<float> values)
    {
        var best = 0;
        for (var i = 1; i < values.Length; i++)
        {
            if (values[i] > values[best])
            {
                best = i;
            }
        }
        return best;
    }
}

/// <summary>
/// The int8 check of a multi-label model: per label, its decision at its threshold under both precisions against the truth
/// (one <see cref="PrecisionComparison"/> per label, a binary problem each), and over every (image, label) decision.
/// </summary>
public sealed class MultiLabelPrecisionCheck(IReadOnlyList<double> thresholds)
{
    private readonly int[][] counts = [.. thresholds.Select(_ => new int[5])]; // images, fp32 right, int8 right, agreeing, only fp32 right
    private readonly int[] onlyInt8 = new int[thresholds.Count];
    private double worst;

    /// <summary>Adds images: both precisions' probabilities (rows x labels) and the truth (rows x labels).</summary>
    public void Add(ReadOnlySpan<float> fp32Probabilities, ReadOnlySpan<float> int8Probabilities, ReadOnlySpan<bool> truth)
    {
        var labels = thresholds.Count;
        ArgumentOutOfRangeException.ThrowIfNotEqual(fp32Probabilities.Length, truth.Length);
        ArgumentOutOfRangeException.ThrowIfNotEqual(int8Probabilities.Length, truth.Length);
        for (var k = 0; k < truth.Length; k++)
        {
            var l = k % labels;
            var on32 = fp32Probabilities[k] >= thresholds[l];
            var on8 = int8Probabilities[k] >= thresholds[l];
            var c = counts[l];
            c[0]++;
            c[1] += on32 == truth[k] ? 1 : 0;
            c[2] += on8 == truth[k] ? 1 : 0;
            c[3] += on32 == on8 ? 1 : 0;
            c[4] += on32 == truth[k] && on8 != truth[k] ? 1 : 0;
            onlyInt8[l] += on8 == truth[k] && on32 != truth[k] ? 1 : 0;
            worst = Math.Max(worst, Math.Abs(fp32Probabilities[k] - int8Probabilities[k]));
        }
    }

    /// <summary>Each label's comparison (its images are the images checked).</summary>
    public IReadOnlyList<PrecisionComparison> PerLabel =>
        [.. counts.Select((c, l) => new PrecisionComparison(c[0], c[1], c[2], c[3], worst, c[4], onlyInt8[l]))];

    /// <summary>Over every (image, label) decision.</summary>
    public PrecisionComparison Overall =>
        new(counts.Sum(c => c[0]), counts.Sum(c => c[1]), counts.Sum(c => c[2]), counts.Sum(c => c[3]), worst, counts.Sum(c => c[4]), onlyInt8.Sum());
}
