using System.Globalization;

namespace ServerlessClassifier.ModelCore.Results;

/// <summary>One label of a multi-label model at its threshold: precision, recall and F1 (0 where a denominator is 0), average precision, and images carrying it.</summary>
public sealed record LabelMetrics(string Label, double Threshold, double Precision, double Recall, double F1, double AveragePrecision, int Support);

/// <summary>
/// A multi-label model's figures on judged images: per label at its threshold; micro F1 (over every image-label decision),
/// macro F1 (mean over labels carried by at least one image), mAP (mean average precision over the same labels), the
/// exact-match ratio (images whose predicted set is their true set), and for comparison the macro F1 with every threshold 0.5.
/// </summary>
public sealed record MultiLabelReport(
    IReadOnlyList<string> Labels, int Samples, IReadOnlyList<LabelMetrics> PerLabel, double MicroF1, double MacroF1, double MeanAveragePrecision, double ExactMatch, double MacroF1AtHalf)
{
    /// <summary>Two lines for a console: the summary figures, then one line per label.</summary>
    public IEnumerable<string> Describe()
    {
        yield return string.Create(CultureInfo.InvariantCulture,
            $"Multi-label, {Samples} images: micro F1 {MicroF1:P1}, macro F1 {MacroF1:P1} (with every threshold at 0.5: {MacroF1AtHalf:P1}), mAP {MeanAveragePrecision:P1}, exact match {ExactMatch:P1}");
        foreach (var m in PerLabel)
        {
            yield return string.Create(CultureInfo.InvariantCulture,
                $"  {m.Label}: threshold {m.Threshold:F3}, precision {m.Precision:P1}, recall {m.Recall:P1}, F1 {m.F1:P1}, AP {m.AveragePrecision:P1} ({m.Support} images)");
        }
    }
}

/// <summary>Multi-label metrics from probabilities and true label sets: pure C#, shared by training and the evaluate command.</summary>
public static class MultiLabelEvaluation
{
    /// <param name="labels">The labels, in output order.</param>
    /// <param name="probabilities">n x labels probabilities, row-major.</param>
    /// <param name="truth">n x labels: whether the image carries the label.</param>
    /// <param name="thresholds">Per label: predicted when the probability is at or above it.</param>
    public static MultiLabelReport Compute(IReadOnlyList<string> labels, ReadOnlySpan<double> probabilities, ReadOnlySpan<bool> truth, IReadOnlyList<double> thresholds)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(thresholds);
        var count = labels.Count;
        if (count == 0 || probabilities.Length != truth.Length || probabilities.Length % count != 0 || thresholds.Count != count)
        {
            throw new ArgumentException($"{probabilities.Length} probabilities, {truth.Length} truths and {thresholds.Count} thresholds for {count} labels.", nameof(probabilities));
        }
        var n = probabilities.Length / count;
        var perLabel = new List<LabelMetrics>();
        var half = new List<(double F1, int Support)>();
        long tpAll = 0, fpAll = 0, fnAll = 0;
        var exact = new bool[n];
        Array.Fill(exact, true);
        for (var l = 0; l < count; l++)
        {
            var scores = new double[n];
            var positive = new bool[n];
            int tp = 0, fp = 0, fn = 0, tpHalf = 0, fpHalf = 0, fnHalf = 0;
            for (var i = 0; i < n; i++)
            {
                scores[i] = probabilities[(i * count) + l];
                positive[i] = truth[(i * count) + l];
                var predicted = scores[i] >= thresholds[l];
                (tp, fp, fn) = Tally(predicted, positive[i], tp, fp, fn);
                (tpHalf, fpHalf, fnHalf) = Tally(scores[i] >= 0.5, positive[i], tpHalf, fpHalf, fnHalf);
                exact[i] &= predicted == positive[i];
            }
            tpAll += tp;
            fpAll += fp;
            fnAll += fn;
            var (precision, recall, f1) = Scores(tp, fp, fn);
            var support = tp + fn;
            perLabel.Add(new LabelMetrics(labels[l], thresholds[l], precision, recall, f1, AveragePrecision(scores, positive), support));
            half.Add((Scores(tpHalf, fpHalf, fnHalf).F1, support));
        }
        var carried = perLabel.Where(m => m.Support > 0).ToList();
        return new MultiLabelReport(
            labels,
            n,
            perLabel,
            Scores(tpAll, fpAll, fnAll).F1,
            carried.Count == 0 ? 0 : carried.Average(m => m.F1),
            carried.Count == 0 ? 0 : carried.Average(m => m.AveragePrecision),
            n == 0 ? 0 : exact.Count(e => e) / (double)n,
            half.Any(h => h.Support > 0) ? half.Where(h => h.Support > 0).Average(h => h.F1) : 0);
    }

    /// <summary>
    /// Average precision as scikit-learn computes it: the sum over distinct scores (highest first) of precision at that score
    /// times the recall it adds. 0 when no image carries the label.
    /// </summary>
    public static double AveragePrecision(IReadOnlyList<double> scores, IReadOnlyList<bool> positive)
    {
        ArgumentNullException.ThrowIfNull(scores);
        ArgumentNullException.ThrowIfNull(positive);
        var total = positive.Count(p => p);
        if (total == 0)
        {
            return 0;
        }
        var order = Enumerable.Range(0, scores.Count).OrderByDescending(i => scores[i]).ToArray();
        double ap = 0;
        int tp = 0, seen = 0, previousTp = 0;
        for (var k = 0; k < order.Length; k++)
        {
            seen++;
            tp += positive[order[k]] ? 1 : 0;
            if (k + 1 < order.Length && scores[order[k + 1]] == scores[order[k]])
            {
                continue; // tied scores are one threshold
            }
            ap += (tp - previousTp) / (double)total * (tp / (double)seen);
            previousTp = tp;
        }
        return ap;
    }

    private static (int Tp, int Fp, int Fn) Tally(bool predicted, bool actual, int tp, int fp, int fn) => (predicted, actual) switch
    {
        (true, true) => (tp + 1, fp, fn),
        (true, false) => (tp, fp + 1, fn),
        (false, true) => (tp, fp, fn + 1),
        _ => (tp, fp, fn),
    };

    private static (double Precision, double Recall, double F1) Scores(long tp, long fp, long fn)
    {
        var precision = tp + fp == 0 ? 0 : tp / (double)(tp + fp);
        var recall = tp + fn == 0 ? 0 : tp / (double)(tp + fn);
        return (precision, recall, precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall));
    }
}
