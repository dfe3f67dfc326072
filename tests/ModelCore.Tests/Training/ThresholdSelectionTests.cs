using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Tests.Training;

public sealed class ThresholdSelectionTests
{
    // Scores high to low: + + - + - - ; 4 positives in all (one never a candidate).
    private static readonly (double Score, bool Positive)[] Candidates = [(0.95, true), (0.9, true), (0.8, false), (0.7, true), (0.6, false), (0.5, false)];

    [Fact]
    public void BestF1_TakesTheThresholdWithTheHighestF1()
    {
        // Answering the top 1..6: F1 = 0.4, 0.667, 0.571, 0.75, 0.667, 0.6: the best is at 0.7 (3 of 4 found, 3 of 4 right).
        var chosen = ThresholdSelection.Choose(Candidates, positives: 4, ThresholdGoal.BestF1)!;
        Assert.Equal(0.7, chosen.Threshold, 9);
        Assert.Equal((4, 0.75, 0.75, 0.75, true), (chosen.Answered, chosen.Precision, chosen.Recall, chosen.F1, chosen.Reached));
    }

    [Fact]
    public void Precision_TakesTheLowestThresholdThatReachesTheTarget()
    {
        // Precision 1, 1, 0.667, 0.75, 0.6, 0.5: the lowest threshold with precision >= 0.7 is 0.7; >= 0.9, 0.9.
        Assert.Equal(0.7, ThresholdSelection.Choose(Candidates, 4, ThresholdGoal.Parse("precision=0.7"))!.Threshold, 9);
        var strict = ThresholdSelection.Choose(Candidates, 4, ThresholdGoal.Parse("precision=0.9"))!;
        Assert.Equal(0.9, strict.Threshold, 9);
        Assert.Equal(0.5, strict.Recall, 9);
    }

    [Fact]
    public void Precision_Unreachable_IsMarkedAndGivesTheMostPreciseThreshold()
    {
        (double, bool)[] candidates = [(0.9, false), (0.8, true), (0.7, false)];
        var chosen = ThresholdSelection.Choose(candidates, 1, ThresholdGoal.Parse("precision=0.9"))!;
        Assert.False(chosen.Reached);
        Assert.Equal(0.8, chosen.Threshold, 9);
        Assert.Equal(0.5, chosen.Precision, 9);
    }

    [Fact]
    public void TiedScores_AreOneThreshold_AndTheBoundaryIsFlooredSoItStaysAnswered()
    {
        (double, bool)[] candidates = [(0.91234, true), (0.6, false), (0.6, true)];
        var chosen = ThresholdSelection.Choose(candidates, 2, ThresholdGoal.BestF1)!;
        // 0.912: P 1, R 0.5, F1 0.667; 0.6 answers both ties: P 0.667, R 1, F1 0.8.
        Assert.Equal((0.6, 3), (chosen.Threshold, chosen.Answered));
        Assert.Equal(0.912, ThresholdSelection.Choose(candidates, 2, ThresholdGoal.Parse("precision=1"))!.Threshold, 9);
    }

    [Fact]
    public void MultiLabelBestF1_IsShrunkTowardHalf_ByTheLabelsPositives()
    {
        // 5 positives: the best out-of-fold F1 is at 0.4 (5 of 5 found, 5 of 8 right), shrunk to (5 x 0.4 + 10 x 0.5) / 15.
        var (scores, positive) = Images([0.97, 0.6, 0.55, 0.45, 0.4], [0.7, 0.65, 0.5, .. Enumerable.Repeat(0.1, 42)]);
        var (threshold, rule) = MultiLabelProbe.ChooseThreshold(scores, positive, targetPrecision: null);
        Assert.Equal(0.466, threshold, 9);
        Assert.Equal("best F1 (0.4) shrunk toward 0.5 by its 5 positives against 0.5's 10", rule);

        // 90 positives with the same scores (each 18 times): nearly as chosen, (90 x 0.4 + 10 x 0.5) / 100.
        var (many, manyPositive) = Images([.. Enumerable.Repeat<double[]>([0.97, 0.6, 0.55, 0.45, 0.4], 18).SelectMany(x => x)],
            [.. Enumerable.Repeat<double[]>([0.7, 0.65, 0.5], 18).SelectMany(x => x), .. Enumerable.Repeat(0.1, 42)]);
        Assert.Equal(0.41, MultiLabelProbe.ChooseThreshold(many, manyPositive, targetPrecision: null).Threshold, 9);

        // A target precision is the caller's own goal: not shrunk (the lowest threshold whose precision is 1: 0.97).
        Assert.Equal(0.97, MultiLabelProbe.ChooseThreshold(scores, positive, targetPrecision: 1).Threshold, 9);
    }

    private static (double[] Scores, bool[] Positive) Images(double[] positives, double[] negatives) =>
        ([.. positives, .. negatives], [.. positives.Select(_ => true), .. negatives.Select(_ => false)]);

    [Fact]
    public void NoCandidatesOrNoPositives_GiveNull()
    {
        Assert.Null(ThresholdSelection.Choose([], 3, ThresholdGoal.BestF1));
        Assert.Null(ThresholdSelection.Choose([(0.9, false)], 0, ThresholdGoal.BestF1));
    }

    [Theory]
    [InlineData("f1", "f1")]
    [InlineData(" F1 ", "f1")]
    [InlineData("precision=0.9", "precision=0.9")]
    [InlineData("PRECISION=1", "precision=1")]
    public void Goal_ParsesAndPrintsBack(string text, string expected) => Assert.Equal(expected, ThresholdGoal.Parse(text).ToString());

    [Theory]
    [InlineData("precision=0")]
    [InlineData("precision=1.5")]
    [InlineData("precision")]
    [InlineData("recall=0.9")]
    public void Goal_RefusesOtherText_SayingWhatIsAccepted(string text) =>
        Assert.Contains("give f1", Assert.Throws<FormatException>(() => ThresholdGoal.Parse(text)).Message, StringComparison.Ordinal);

    [Fact]
    public void ClassChooser_GivesEachClassItsOwnThreshold_AndKeepsTheSingleOneWhereEvidenceIsThin()
    {
        // cat: six answers; dog: two images only.
        var predictions = new List<ValidationPrediction>
        {
            P("cat", "cat", 0.95), P("cat", "cat", 0.9), P("dog", "cat", 0.8), P("cat", "cat", 0.7), P("dog", "cat", 0.6), P("cat", "cat", 0.55),
            P("cat", "dog", 0.9),
        };
        var choices = ClassThresholdChooser.Choose(["cat", "dog"], predictions, 0.3, ThresholdGoal.Parse("precision=0.75"));
        var cat = choices[0];
        // cat candidates: + + - + - +, 5 cats in all: precision >= 0.75 lowest at 0.7 (3 of 4); at 0.55, 4 of 6 = 0.667.
        Assert.Equal(0.7, cat.Threshold, 9);
        Assert.Equal(4.0 / 6, cat.AtSingle.Precision, 9);
        Assert.Null(choices[1].Own);
        Assert.Contains("fewer than 5", choices[1].Note, StringComparison.Ordinal);
        Assert.Equal(0.3, choices[1].Threshold, 9);
        Assert.Equal(new Dictionary<string, double> { ["cat"] = 0.7 }, ClassThresholdChooser.Spec(ThresholdGoal.Parse("precision=0.75"), choices).Thresholds);
    }

    private static ValidationPrediction P(string actual, string predicted, double confidence) => new("x.png", actual, predicted, confidence, []);
}
