using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>How an int8 graph compares with the fp32 graph it came from on labelled, preprocessed images.</summary>
/// <param name="Images">Images both graphs classified.</param>
/// <param name="Fp32Correct">Images the fp32 graph labelled correctly.</param>
/// <param name="Int8Correct">Images the int8 graph labelled correctly.</param>
/// <param name="Agreeing">Images whose top-1 label is the same under both.</param>
/// <param name="MaxProbabilityDifference">Largest |p_int8 - p_fp32| over every class of every image.</param>
public sealed record PrecisionComparison(int Images, int Fp32Correct, int Int8Correct, int Agreeing, double MaxProbabilityDifference)
{
    public double Fp32Accuracy => Images == 0 ? 0 : (double)Fp32Correct / Images;

    public double Int8Accuracy => Images == 0 ? 0 : (double)Int8Correct / Images;

    public double Top1Agreement => Images == 0 ? 0 : (double)Agreeing / Images;

    /// <summary>fp32 accuracy minus int8 accuracy, in percentage points.</summary>
    public double AccuracyDropPoints => (Fp32Accuracy - Int8Accuracy) * 100;
}

/// <summary>Runs both graphs on the same batches and counts (the int8 check of <see cref="ServingGraphs"/>).</summary>
public sealed class PrecisionCheck(IClassifierEngine fp32, IClassifierEngine quantized)
{
    private int images;
    private int fp32Correct;
    private int int8Correct;
    private int agreeing;
    private double worst;

    /// <summary>Adds one batch: <paramref name="batchSize"/> preprocessed images and their label indices.</summary>
    public void Add(ReadOnlySpan<float> batch, int batchSize, IReadOnlyList<int> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var expected = fp32.PredictProbabilities(batch, batchSize);
        var actual = quantized.PredictProbabilities(batch, batchSize);
        var classes = fp32.NumClasses;
        for (var i = 0; i < batchSize; i++)
        {
            var p32 = expected.AsSpan(i * classes, classes);
            var p8 = actual.AsSpan(i * classes, classes);
            var top32 = ArgMax(p32);
            var top8 = ArgMax(p8);
            fp32Correct += top32 == labels[i] ? 1 : 0;
            int8Correct += top8 == labels[i] ? 1 : 0;
            agreeing += top32 == top8 ? 1 : 0;
            for (var c = 0; c < classes; c++)
            {
                worst = Math.Max(worst, Math.Abs(p32[c] - p8[c]));
            }
        }
        images += batchSize;
    }

    public PrecisionComparison Result => new(images, fp32Correct, int8Correct, agreeing, worst);

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
