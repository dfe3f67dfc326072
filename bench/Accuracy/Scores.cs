using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Probe;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>One contender's figures on one set's held-out test images.</summary>
internal sealed record Score(string Contender, double Accuracy, double MacroF1, double Ece, double TrainSeconds, string Note = "")
{
    /// <summary>Accuracy, macro-F1 (the product's <see cref="Evaluation"/>) and 15-bin ECE of probabilities (n x classes) against labels.</summary>
    public static Score Of(string contender, IReadOnlyList<string> labels, float[] probabilities, IReadOnlyList<int> truth, double trainSeconds, string note = "")
    {
        var classes = labels.Count;
        var pairs = new List<(string, string)>();
        var top = new List<(bool, double)>();
        for (var i = 0; i < truth.Count; i++)
        {
            var row = probabilities.AsSpan(i * classes, classes);
            var best = 0;
            for (var c = 1; c < classes; c++)
            {
                if (row[c] > row[best])
                {
                    best = c;
                }
            }
            pairs.Add((labels[truth[i]], labels[best]));
            top.Add((best == truth[i], row[best]));
        }
        var report = Evaluation.Compute(labels, pairs);
        return new Score(contender, report.Accuracy, report.MacroF1, Calibration.ExpectedCalibrationError(top), trainSeconds, note);
    }
}
