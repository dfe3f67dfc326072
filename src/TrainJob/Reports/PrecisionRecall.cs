using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>One class's precision-recall curve (one class against the rest) and its average precision.</summary>
/// <param name="Recall">Recall at each distinct score, from the highest score down.</param>
/// <param name="Precision">Precision at the same points.</param>
/// <param name="AveragePrecision">Sum over those points of (recall gained) x precision, as scikit-learn's <c>average_precision_score</c>; NaN when the class has no image.</param>
public sealed record PrecisionRecallCurve(string Label, int Positives, double[] Recall, double[] Precision, double AveragePrecision)
{
    /// <summary>Each class's curve from the predictions' probabilities (the order of <paramref name="labels"/>).</summary>
    /// <param name="multiLabel">The predictions are a multi-label model's: an image is positive for every label its <see cref="ValidationPrediction.Actual"/> lists (';'-separated).</param>
    public static IReadOnlyList<PrecisionRecallCurve> For(IReadOnlyList<string> labels, IReadOnlyList<ValidationPrediction> predictions, bool multiLabel = false)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(predictions);
        var usable = predictions.Where(p => p.Probabilities.Count == labels.Count).ToList();
        bool Positive(ValidationPrediction p, string label) => multiLabel ? p.Actual.Split(';').Contains(label, StringComparer.Ordinal) : p.Actual == label;
        return [.. labels.Select((label, c) => Compute(label, [.. usable.Select(p => ((double)p.Probabilities[c], Positive(p, label)))]))];
    }

    /// <summary>The curve over (score, is this class) pairs; tied scores form one point.</summary>
    public static PrecisionRecallCurve Compute(string label, IReadOnlyList<(double Score, bool Positive)> scored)
    {
        ArgumentNullException.ThrowIfNull(scored);
        var positives = scored.Count(s => s.Positive);
        var recall = new List<double>();
        var precision = new List<double>();
        if (positives == 0)
        {
            return new PrecisionRecallCurve(label, 0, [], [], double.NaN);
        }
        var ordered = scored.OrderByDescending(s => s.Score).ToList();
        var (truePositives, seen, ap, lastRecall) = (0, 0, 0.0, 0.0);
        for (var i = 0; i < ordered.Count; i++)
        {
            seen++;
            truePositives += ordered[i].Positive ? 1 : 0;
            if (i + 1 < ordered.Count && ordered[i + 1].Score == ordered[i].Score)
            {
                continue; // a tie: one threshold
            }
            var r = (double)truePositives / positives;
            var p = (double)truePositives / seen;
            ap += (r - lastRecall) * p;
            lastRecall = r;
            recall.Add(r);
            precision.Add(p);
        }
        return new PrecisionRecallCurve(label, positives, [.. recall], [.. precision], ap);
    }
}
