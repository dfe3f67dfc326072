namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// Confidence calibration on held-out logits: temperature scaling (Guo et al. 2017: one scalar T,
/// probabilities softmax(z / T), fitted by minimising the negative log-likelihood) and the expected
/// calibration error (15 equal-width confidence bins, weighted by their sample counts).
/// </summary>
public static class Calibration
{
    /// <summary>Bins of <see cref="ExpectedCalibrationError"/>.</summary>
    public const int Bins = 15;

    /// <summary>Searched range of T.</summary>
    public const double MinTemperature = 0.05;

    public const double MaxTemperature = 20;

    /// <summary>Softmax of each row of <paramref name="logits"/> (n x classes, row-major) divided by <paramref name="temperature"/>.</summary>
    public static double[] Softmax(ReadOnlySpan<double> logits, int classes, double temperature = 1)
    {
        var probabilities = new double[logits.Length];
        for (var row = 0; row < logits.Length / classes; row++)
        {
            var z = logits.Slice(row * classes, classes);
            var max = double.NegativeInfinity;
            foreach (var v in z)
            {
                max = Math.Max(max, v / temperature);
            }
            double sum = 0;
            for (var c = 0; c < classes; c++)
            {
                sum += probabilities[(row * classes) + c] = Math.Exp((z[c] / temperature) - max);
            }
            for (var c = 0; c < classes; c++)
            {
                probabilities[(row * classes) + c] /= sum;
            }
        }
        return probabilities;
    }

    /// <summary>Mean negative log-likelihood of the labels under softmax(logits / T).</summary>
    public static double NegativeLogLikelihood(ReadOnlySpan<double> logits, IReadOnlyList<int> labels, int classes, double temperature = 1)
    {
        double sum = 0;
        for (var row = 0; row < labels.Count; row++)
        {
            var z = logits.Slice(row * classes, classes);
            var max = double.NegativeInfinity;
            foreach (var v in z)
            {
                max = Math.Max(max, v / temperature);
            }
            double total = 0;
            foreach (var v in z)
            {
                total += Math.Exp((v / temperature) - max);
            }
            sum += max + Math.Log(total) - (z[labels[row]] / temperature);
        }
        return sum / Math.Max(1, labels.Count);
    }

    /// <summary>
    /// The temperature that minimises <see cref="NegativeLogLikelihood"/>: golden-section search over
    /// log T in [0.05, 20] (the NLL is unimodal there: it is convex in 1/T).
    /// </summary>
    public static double FitTemperature(ReadOnlySpan<double> logits, IReadOnlyList<int> labels, int classes)
    {
        var copy = logits.ToArray();
        double Loss(double logT) => NegativeLogLikelihood(copy, labels, classes, Math.Exp(logT));
        double a = Math.Log(MinTemperature), b = Math.Log(MaxTemperature);
        var ratio = (Math.Sqrt(5) - 1) / 2;
        var c = b - (ratio * (b - a));
        var d = a + (ratio * (b - a));
        double fc = Loss(c), fd = Loss(d);
        for (var i = 0; i < 80 && b - a > 1e-6; i++)
        {
            if (fc < fd)
            {
                (b, d, fd) = (d, c, fc);
                c = b - (ratio * (b - a));
                fc = Loss(c);
            }
            else
            {
                (a, c, fc) = (c, d, fd);
                d = a + (ratio * (b - a));
                fd = Loss(d);
            }
        }
        return Math.Exp((a + b) / 2);
    }

    /// <summary>
    /// Expected calibration error of top-1 predictions: the sample-weighted mean over 15 equal-width
    /// confidence bins of |accuracy - mean confidence|. 0 for perfectly calibrated confidences.
    /// </summary>
    public static double ExpectedCalibrationError(IReadOnlyList<(bool Correct, double Confidence)> predictions)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        if (predictions.Count == 0)
        {
            return 0;
        }
        var count = new int[Bins];
        var correct = new double[Bins];
        var confidence = new double[Bins];
        foreach (var (isCorrect, p) in predictions)
        {
            var bin = Math.Clamp((int)Math.Ceiling(p * Bins) - 1, 0, Bins - 1);
            count[bin]++;
            correct[bin] += isCorrect ? 1 : 0;
            confidence[bin] += p;
        }
        double ece = 0;
        for (var bin = 0; bin < Bins; bin++)
        {
            if (count[bin] > 0)
            {
                ece += Math.Abs(correct[bin] - confidence[bin]) / predictions.Count;
            }
        }
        return ece;
    }

    /// <summary>(correct, top-1 confidence) of each row of <paramref name="probabilities"/>.</summary>
    public static List<(bool Correct, double Confidence)> TopOne(ReadOnlySpan<double> probabilities, IReadOnlyList<int> labels, int classes)
    {
        var result = new List<(bool, double)>(labels.Count);
        for (var row = 0; row < labels.Count; row++)
        {
            var p = probabilities.Slice(row * classes, classes);
            var top = 0;
            for (var c = 1; c < classes; c++)
            {
                if (p[c] > p[top])
                {
                    top = c;
                }
            }
            result.Add((top == labels[row], p[top]));
        }
        return result;
    }
}
