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
            sum += RowLoss(logits, labels, classes, temperature, row);
        }
        return sum / Math.Max(1, labels.Count);
    }

    /// <summary>Each image's negative log-likelihood of its label under softmax(logits / T).</summary>
    public static double[] NegativeLogLikelihoods(ReadOnlySpan<double> logits, IReadOnlyList<int> labels, int classes, double temperature = 1)
    {
        var losses = new double[labels.Count];
        for (var row = 0; row < labels.Count; row++)
        {
            losses[row] = RowLoss(logits, labels, classes, temperature, row);
        }
        return losses;
    }

    private static double RowLoss(ReadOnlySpan<double> logits, IReadOnlyList<int> labels, int classes, double temperature, int row)
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
        return max + Math.Log(total) - (z[labels[row]] / temperature);
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

    /// <summary>Folds <see cref="ChooseTemperature"/> cross-fits the temperature over when the caller has none of its own.</summary>
    public const int CrossFitFolds = 5;

    /// <summary>
    /// The temperature to serve, never one that makes held-out predictions worse than T = 1. T is fitted on every row
    /// (<see cref="FitTemperature"/>), and judged out-of-sample: for each fold, T is fitted again on the other folds' rows and
    /// scores this fold's (cross-fitting: the rows a T is judged on never chose it). The fitted T is kept only when that
    /// held-out log-loss is lower than the log-loss at T = 1 and, when the fit ran to a bound of the searched range (no
    /// interior optimum: the T = 20 of 32 images of a 4,096-wide head that doubled the ECE), also its held-out ECE is no
    /// higher than at T = 1. Otherwise T = 1, and the choice says why.
    /// </summary>
    /// <param name="foldOf">Each row's fold (a probe's cross-validation folds); null: stratified folds from <paramref name="seed"/>.</param>
    public static TemperatureChoice ChooseTemperature(ReadOnlySpan<double> logits, IReadOnlyList<int> labels, int classes, IReadOnlyList<int>? foldOf = null, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(labels);
        var n = labels.Count;
        var all = logits.ToArray();
        var nllAtOne = NegativeLogLikelihood(all, labels, classes);
        var eceAtOne = ExpectedCalibrationError(TopOne(Softmax(all, classes), labels, classes));
        if (n < 2)
        {
            return new TemperatureChoice(1, 1, false, nllAtOne, nllAtOne, eceAtOne, eceAtOne, false);
        }
        var fitted = FitTemperature(all, labels, classes);
        var atBound = fitted <= MinTemperature * 1.001 || fitted >= MaxTemperature / 1.001;
        foldOf ??= StratifiedFolds.Assign(labels, Math.Min(CrossFitFolds, n), seed);
        var heldOut = new double[all.Length];
        var heldOutNll = 0.0;
        foreach (var fold in foldOf.Distinct())
        {
            var inside = Enumerable.Range(0, n).Where(i => foldOf[i] == fold).ToList();
            var outside = Enumerable.Range(0, n).Where(i => foldOf[i] != fold).ToList();
            var t = outside.Count == 0 ? 1 : FitTemperature(Rows(all, outside, classes), [.. outside.Select(i => labels[i])], classes);
            var rows = Rows(all, inside, classes);
            heldOutNll += NegativeLogLikelihood(rows, [.. inside.Select(i => labels[i])], classes, t) * inside.Count;
            var probabilities = Softmax(rows, classes, t);
            for (var r = 0; r < inside.Count; r++)
            {
                Array.Copy(probabilities, r * classes, heldOut, inside[r] * classes, classes);
            }
        }
        heldOutNll /= n;
        var heldOutEce = ExpectedCalibrationError(TopOne(heldOut, labels, classes));
        var kept = heldOutNll < nllAtOne && (!atBound || heldOutEce <= eceAtOne);
        return new TemperatureChoice(kept ? fitted : 1, fitted, atBound, nllAtOne, heldOutNll, eceAtOne, heldOutEce, kept);
    }

    private static double[] Rows(double[] logits, List<int> rows, int classes) => [.. rows.SelectMany(i => logits.AsSpan(i * classes, classes).ToArray())];

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

/// <summary>
/// A temperature chosen by <see cref="Calibration.ChooseTemperature"/>: the one served (<see cref="Temperature"/>), the one
/// fitted, whether that fit ran to a bound, and the held-out (cross-fitted) figures it was judged on against T = 1.
/// </summary>
/// <param name="Temperature">The temperature served: <paramref name="Fitted"/> when <paramref name="Kept"/>, else 1.</param>
/// <param name="Fitted">The temperature that minimises the log-loss of every row.</param>
/// <param name="AtBound">True when the fit ran to a bound of [<see cref="Calibration.MinTemperature"/>, <see cref="Calibration.MaxTemperature"/>].</param>
/// <param name="NllAtOne">Mean log-loss at T = 1.</param>
/// <param name="HeldOutNll">Mean log-loss of each fold's rows at the T fitted on the other folds.</param>
/// <param name="EceAtOne">Expected calibration error at T = 1.</param>
/// <param name="HeldOutEce">Expected calibration error of the cross-fitted probabilities.</param>
/// <param name="Kept">Whether the fitted T is served.</param>
public sealed record TemperatureChoice(double Temperature, double Fitted, bool AtBound, double NllAtOne, double HeldOutNll, double EceAtOne, double HeldOutEce, bool Kept)
{
    /// <summary>One sentence: what was served and why.</summary>
    public string Describe() => Kept
        ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"temperature {Fitted:F3}{(AtBound ? " (at the bound of its search range)" : "")}: held-out log-loss {HeldOutNll:F3} against {NllAtOne:F3} at T = 1")
        : string.Create(System.Globalization.CultureInfo.InvariantCulture, $"temperature 1 kept: the fitted {Fitted:F3}{(AtBound ? " ran to the bound of its search range and" : "")} gave held-out log-loss {HeldOutNll:F3} (T = 1: {NllAtOne:F3}), ECE {HeldOutEce:P1} (T = 1: {EceAtOne:P1})");
}
