using System.Globalization;
using System.Text;

namespace ServerlessClassifier.ModelCore.Results;

/// <summary>Precision, recall and F1 of one class; 0 where the denominator is 0.</summary>
public sealed record ClassMetrics(string Label, double Precision, double Recall, double F1, int Support);

/// <summary>
/// Accuracy, per-class metrics and the confusion matrix (rows: true label, columns: predicted label,
/// both in <see cref="Labels"/> order). Predicted labels outside the model's labels (e.g.
/// <c>unknown</c> below the confidence threshold) get a column of their own at the end.
/// </summary>
public sealed record EvaluationReport(
    IReadOnlyList<string> Labels, int Samples, double Accuracy, double MacroF1, IReadOnlyList<ClassMetrics> PerClass, IReadOnlyList<IReadOnlyList<int>> ConfusionMatrix)
{
    /// <summary>Samples whose predicted label is their true label (the diagonal of <see cref="ConfusionMatrix"/>).</summary>
    public int Correct => Enumerable.Range(0, ConfusionMatrix.Count).Sum(c => ConfusionMatrix[c][c]);

    /// <summary>The confusion matrix as aligned text, one row per true label.</summary>
    public string FormatConfusionMatrix()
    {
        var width = Math.Max(6, Labels.Max(l => l.Length) + 1);
        var text = new StringBuilder();
        text.Append("true \\ predicted".PadRight(width));
        foreach (var label in Labels)
        {
            text.Append(label.PadLeft(width));
        }
        text.AppendLine();
        for (var row = 0; row < ConfusionMatrix.Count; row++)
        {
            text.Append(Labels[row].PadRight(width));
            foreach (var count in ConfusionMatrix[row])
            {
                text.Append(count.ToString(CultureInfo.InvariantCulture).PadLeft(width));
            }
            text.AppendLine();
        }
        return text.ToString();
    }
}

/// <summary>Classification metrics from (true, predicted) label pairs: pure C#, shared by training and the evaluate command.</summary>
public static class Evaluation
{
    /// <summary>Computes accuracy, per-class precision/recall/F1/support, macro F1 and the confusion matrix.</summary>
    /// <param name="labels">The model's labels in output order; every true label must be one of them.</param>
    /// <param name="pairs">(true label, predicted label) per sample.</param>
    public static EvaluationReport Compute(IReadOnlyList<string> labels, IEnumerable<(string Actual, string Predicted)> pairs)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(pairs);
        var all = pairs.ToList();
        var columns = labels.Concat(all.Select(p => p.Predicted).Where(p => !labels.Contains(p, StringComparer.Ordinal)).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)).ToList();
        var index = columns.Select((l, i) => (l, i)).ToDictionary(x => x.l, x => x.i, StringComparer.Ordinal);
        var matrix = new int[labels.Count][];
        for (var i = 0; i < labels.Count; i++)
        {
            matrix[i] = new int[columns.Count];
        }
        foreach (var (actual, predicted) in all)
        {
            if (!index.TryGetValue(actual, out var row) || row >= labels.Count)
            {
                throw new ArgumentException($"True label \"{actual}\" is not one of the model's labels.", nameof(pairs));
            }
            matrix[row][index[predicted]]++;
        }
        var perClass = new List<ClassMetrics>();
        for (var c = 0; c < labels.Count; c++)
        {
            var truePositives = matrix[c][c];
            var support = matrix[c].Sum();
            var predictedCount = matrix.Sum(r => r[c]);
            var precision = predictedCount == 0 ? 0 : (double)truePositives / predictedCount;
            var recall = support == 0 ? 0 : (double)truePositives / support;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            perClass.Add(new ClassMetrics(labels[c], precision, recall, f1, support));
        }
        var correct = Enumerable.Range(0, labels.Count).Sum(c => matrix[c][c]);
        var withSupport = perClass.Where(m => m.Support > 0).ToList();
        return new EvaluationReport(
            columns,
            all.Count,
            all.Count == 0 ? 0 : (double)correct / all.Count,
            withSupport.Count == 0 ? 0 : withSupport.Average(m => m.F1),
            perClass,
            matrix);
    }

    /// <summary>Fewest validation images for which a confidence threshold is chosen; below it the threshold is 0 (disabled).</summary>
    public const int MinSamplesForThreshold = 20;

    /// <summary>Fraction of correct validation predictions the threshold keeps at or above it.</summary>
    public const double ThresholdKeepsCorrect = 0.95;

    /// <summary>Upper bound of the chosen threshold.</summary>
    public const double MaxThreshold = 0.9;

    /// <summary>
    /// The default confidence threshold, chosen on validation predictions: the largest t such that at
    /// least 95% of the correct predictions have confidence &gt;= t (the 5th percentile of their
    /// confidences), clamped to [0, 0.9]. So at most about 5% of answers that would have been right
    /// are reported as <c>unknown</c>, while low-confidence answers (most of the wrong ones) are.
    /// 0 (disabled) when there are fewer than 20 validation samples or no correct prediction.
    /// </summary>
    public static double ChooseConfidenceThreshold(IEnumerable<(bool Correct, double Confidence)> predictions)
    {
        ArgumentNullException.ThrowIfNull(predictions);
        var all = predictions.ToList();
        var correct = all.Where(p => p.Correct).Select(p => p.Confidence).Order().ToList();
        if (all.Count < MinSamplesForThreshold || correct.Count == 0)
        {
            return 0;
        }
        // Keep ceil(0.95 n) correct predictions: the threshold is the confidence of the lowest kept one.
        var keep = (int)Math.Ceiling(ThresholdKeepsCorrect * correct.Count);
        var threshold = correct[correct.Count - keep];
        return Math.Clamp(Math.Floor(threshold * 1000) / 1000, 0, MaxThreshold);
    }
}
