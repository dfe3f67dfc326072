using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Tests.Training;

public sealed class EvaluationTests
{
    [Fact]
    public void Compute_GivesConfusionMatrixAndPerClassMetrics()
    {
        string[] labels = ["cat", "dog"];
        (string, string)[] pairs = [("cat", "cat"), ("cat", "cat"), ("cat", "dog"), ("dog", "dog"), ("dog", "unknown")];
        var report = Evaluation.Compute(labels, pairs);

        Assert.Equal(["cat", "dog", "unknown"], report.Labels);
        Assert.Equal([2, 1, 0], report.ConfusionMatrix[0]);
        Assert.Equal([0, 1, 1], report.ConfusionMatrix[1]);
        Assert.Equal(0.6, report.Accuracy, 12);
        var cat = report.PerClass[0];
        Assert.Equal((1.0, 2.0 / 3, 0.8, 3), (cat.Precision, cat.Recall, cat.F1, cat.Support));
        var dog = report.PerClass[1];
        Assert.Equal((0.5, 0.5, 0.5, 2), (dog.Precision, dog.Recall, dog.F1, dog.Support));
        Assert.Equal(0.65, report.MacroF1, 12);
        Assert.Contains("unknown", report.FormatConfusionMatrix(), StringComparison.Ordinal);
    }

    [Fact]
    public void Compute_RefusesATrueLabelOutsideTheModel() =>
        Assert.Throws<ArgumentException>(() => Evaluation.Compute(["a", "b"], [("c", "a")]));

    [Fact]
    public void ChooseConfidenceThreshold_KeepsNinetyFivePercentOfCorrectPredictions()
    {
        // 40 correct predictions with confidences 0.51..0.90 and 10 wrong ones at 0.4.
        var predictions = Enumerable.Range(1, 40).Select(i => (true, 0.5 + (i / 100.0)))
            .Concat(Enumerable.Repeat((false, 0.4), 10)).ToList();
        var threshold = Evaluation.ChooseConfidenceThreshold(predictions);

        // ceil(0.95 * 40) = 38 kept: the lowest kept is the third smallest, 0.53.
        Assert.Equal(0.53, threshold, 9);
        Assert.Equal(38, predictions.Count(p => p.Item1 && p.Item2 >= threshold));
    }

    [Fact]
    public void ChooseConfidenceThreshold_IsZeroForASmallValidationSet_AndAtMostPointNine()
    {
        Assert.Equal(0, Evaluation.ChooseConfidenceThreshold(Enumerable.Repeat((true, 0.99), 19)));
        Assert.Equal(0.9, Evaluation.ChooseConfidenceThreshold(Enumerable.Repeat((true, 0.999), 30)));
    }
}
