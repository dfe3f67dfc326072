namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>
/// Accuracy, per-class precision/recall/F1 and the confusion matrix (rows: true label, columns:
/// predicted label, both in <see cref="Labels"/> order) of a set of predictions.
/// </summary>
public sealed record ClassificationMetrics(IReadOnlyList<string> Labels, IReadOnlyList<IReadOnlyList<int>> Confusion)
{
    public int Samples => Confusion.Sum(row => row.Sum());

    public int Correct => Enumerable.Range(0, Labels.Count).Sum(i => Confusion[i][i]);

    /// <summary>Fraction of samples whose top-1 prediction is their true label (0..1; 0 without samples).</summary>
    public double Accuracy => Samples == 0 ? 0 : (double)Correct / Samples;

    public IReadOnlyList<ClassMetrics> PerClass =>
    [
        .. Labels.Select((label, i) =>
        {
            var truePositives = Confusion[i][i];
            var predicted = Confusion.Sum(row => row[i]);
            var actual = Confusion[i].Sum();
            var precision = predicted == 0 ? 0 : (double)truePositives / predicted;
            var recall = actual == 0 ? 0 : (double)truePositives / actual;
            var f1 = precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
            return new ClassMetrics(label, precision, recall, f1, actual);
        }),
    ];

    /// <summary>Builds the metrics from (true index, predicted index) pairs.</summary>
    public static ClassificationMetrics From(IReadOnlyList<string> labels, IEnumerable<(int Actual, int Predicted)> pairs)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(pairs);
        var matrix = new int[labels.Count][];
        for (var i = 0; i < matrix.Length; i++)
        {
            matrix[i] = new int[labels.Count];
        }
        foreach (var (actual, predicted) in pairs)
        {
            if ((uint)actual >= (uint)labels.Count || (uint)predicted >= (uint)labels.Count)
            {
                throw new ArgumentOutOfRangeException(nameof(pairs), $"class index ({actual}, {predicted}) is outside 0..{labels.Count - 1}.");
            }
            matrix[actual][predicted]++;
        }
        return new ClassificationMetrics(labels, matrix);
    }
}
