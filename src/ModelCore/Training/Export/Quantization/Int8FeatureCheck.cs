using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// The int8 check of a probe fitted on the int8 backbone's features (<see cref="PrecisionOptions.Int8Features"/>): on the
/// calibration images, whose fp32 features the calibration pass gave for free, each image goes through the fold head that
/// never trained on it twice, once with its int8 features (the served model's out-of-fold answer) and once with its fp32
/// features (what the fp32 backbone gives that head); the int8 model is kept when its accuracy there is within the plan's
/// limit of fp32's. So the check needs no fp32 pass over the other images, and it judges only images the head did not
/// train on. The activation ranges were calibrated on these same images: what that could flatter is measured on the
/// accuracy benchmark's held-out test images (docs/benchmarks-accuracy.md).
/// <para>
/// Its premise is that the int8 features are a close copy of the fp32 ones, so a head fitted on them stands for the head
/// fp32 features would give. A head that does significantly better on the int8 features than on the fp32 ones (the 95 %
/// interval of the drop wholly below zero) has learnt what quantisation added, and then the comparison says nothing about
/// fp32: that fails the check too (a broken quantiser does exactly this), and training falls back to fp32 features.
/// </para>
/// </summary>
internal static class Int8FeatureCheck
{
    /// <summary>The evidence's name in the manifest and the train output.</summary>
    public const string Evidence = "out-of-fold calibration";

    /// <summary>Whether the comparison keeps the int8 features: int8 at most <paramref name="maxDropPoints"/> below fp32, and not significantly above it; else why not.</summary>
    public static (bool Passed, string? Why) Judge(PrecisionComparison comparison, double maxDropPoints)
    {
        ArgumentNullException.ThrowIfNull(comparison);
        if (comparison.Images == 0)
        {
            return (false, "no calibration image was among the images the probe was fitted on");
        }
        if (comparison.AccuracyDropPoints > maxDropPoints + 1e-9)
        {
            return (false, "int8 is below fp32 by more than allowed");
        }
        return comparison.AccuracyDropInterval.High < 0
            ? (false, "the head does significantly better on int8 than on fp32 features (95 % interval of the drop below zero): it fits what quantisation added")
            : (true, null);
    }

    /// <summary>The comparison on the calibration images that are among <paramref name="images"/> (each with its fold head).</summary>
    /// <param name="sample">The calibration images and their fp32 features.</param>
    /// <param name="images">The images the probe was cross-validated on, in the order of <paramref name="int8Features"/>'s rows.</param>
    /// <param name="labels">Their label indices.</param>
    /// <param name="int8Features">Their int8 features.</param>
    /// <param name="heads">The probe's fold heads on raw features (T = 1).</param>
    /// <param name="headOf">Each image's fold head.</param>
    /// <param name="classes">Number of classes.</param>
    /// <param name="temperature">The served head's temperature: probabilities are compared at it.</param>
    public static PrecisionComparison Compare(IReadOnlyList<(LabeledImage Image, float[] Fp32)> sample, IReadOnlyList<LabeledImage> images, IReadOnlyList<int> labels,
        FeatureRows int8Features, IReadOnlyList<LinearWeights> heads, IReadOnlyList<int> headOf, int classes, double temperature)
    {
        ArgumentNullException.ThrowIfNull(sample);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(int8Features);
        ArgumentNullException.ThrowIfNull(heads);
        ArgumentNullException.ThrowIfNull(headOf);
        var width = int8Features.Width;
        if (heads.Any(h => h.Weight.Length != classes * width || h.Bias.Length != classes))
        {
            throw new ArgumentException($"The fold heads do not read the {width} features of {classes} classes.", nameof(heads));
        }
        var rowOf = new Dictionary<LabeledImage, int>(ReferenceEqualityComparer.Instance);
        for (var i = 0; i < images.Count; i++)
        {
            rowOf.TryAdd(images[i], i);
        }
        var check = new PrecisionCheck();
        var fp32 = new float[classes];
        var int8 = new float[classes];
        foreach (var (image, features) in sample)
        {
            if (!rowOf.TryGetValue(image, out var row))
            {
                continue;
            }
            var head = heads[headOf[row]];
            Probabilities(head, features, classes, temperature, fp32);
            Probabilities(head, int8Features.Row(row), classes, temperature, int8);
            check.Add(fp32, int8, classes, [labels[row]]);
        }
        return check.Result;
    }

    private static void Probabilities(LinearWeights head, ReadOnlySpan<float> features, int classes, double temperature, Span<float> probabilities)
    {
        var width = features.Length;
        Span<double> logits = stackalloc double[classes];
        var max = double.NegativeInfinity;
        for (var c = 0; c < classes; c++)
        {
            double z = head.Bias[c];
            var w = head.Weight.AsSpan(c * width, width);
            for (var j = 0; j < width; j++)
            {
                z += w[j] * features[j];
            }
            logits[c] = z / temperature;
            max = Math.Max(max, logits[c]);
        }
        double sum = 0;
        for (var c = 0; c < classes; c++)
        {
            sum += Math.Exp(logits[c] - max);
        }
        for (var c = 0; c < classes; c++)
        {
            probabilities[c] = (float)(Math.Exp(logits[c] - max) / sum);
        }
    }
}
