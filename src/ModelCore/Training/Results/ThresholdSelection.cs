using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Results;

/// <summary>What a per-class (or per-label) threshold is chosen for.</summary>
public enum ThresholdGoalKind
{
    /// <summary>The threshold with the best F1 of the class's answers.</summary>
    BestF1,

    /// <summary>The lowest threshold whose answers reach a target precision (so the most recall at that precision).</summary>
    Precision,
}

/// <summary>
/// A threshold goal as people write it: <c>f1</c>, or <c>precision=0.9</c> (a target precision between 0 and 1, exclusive
/// of 0). <see cref="ToString"/> gives the same form back.
/// </summary>
public sealed record ThresholdGoal(ThresholdGoalKind Kind, double TargetPrecision = 0)
{
    public static ThresholdGoal BestF1 { get; } = new(ThresholdGoalKind.BestF1);

    /// <summary>The goal <paramref name="text"/> names.</summary>
    /// <exception cref="FormatException">Neither <c>f1</c> nor <c>precision=P</c> with 0 &lt; P &lt;= 1; the message says what is accepted.</exception>
    public static ThresholdGoal Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var value = text.Trim();
        if (value.Equals("f1", StringComparison.OrdinalIgnoreCase))
        {
            return BestF1;
        }
        const string prefix = "precision=";
        if (value.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
            && double.TryParse(value[prefix.Length..], NumberStyles.Float, CultureInfo.InvariantCulture, out var target)
            && target is > 0 and <= 1)
        {
            return new ThresholdGoal(ThresholdGoalKind.Precision, target);
        }
        throw new FormatException($"\"{text}\" is not a threshold goal: give f1 (best F1 per class) or precision=P with P in (0, 1], for example precision=0.9.");
    }

    public override string ToString() => Kind == ThresholdGoalKind.BestF1 ? "f1" : string.Create(CultureInfo.InvariantCulture, $"precision={TargetPrecision:0.###}");
}

/// <summary>
/// A chosen threshold and what it gives on the evidence it was chosen on: the answers at or above it, their precision,
/// the recall (of every positive, answered or not) and F1. <see cref="Reached"/> is false when a precision goal cannot be
/// met at any threshold (the threshold is then the one with the best precision, ties to the most recall).
/// </summary>
public sealed record ChosenThreshold(double Threshold, int Answered, double Precision, double Recall, double F1, bool Reached);

/// <summary>
/// Chooses one threshold over scored candidates, for one class of a multiclass model (the candidates are the images the
/// model ranks that class first, scored by its probability) or one label of a multi-label model (every image, scored by
/// the label's probability). Thresholds are floored to 0.001 so that the answer at the boundary stays answered.
/// </summary>
public static class ThresholdSelection
{
    /// <summary>
    /// The threshold for <paramref name="goal"/>: every distinct candidate score is a possible threshold (answer those at or
    /// above it). Best F1 takes the highest F1 (ties: the lower threshold, more answers); a precision goal takes the lowest
    /// threshold whose precision reaches the target. Null when there is no candidate or no positive.
    /// </summary>
    /// <param name="candidates">Each candidate's score and whether it is truly of the class.</param>
    /// <param name="positives">How many images truly are of the class (recall's denominator; at least the positive candidates).</param>
    public static ChosenThreshold? Choose(IReadOnlyList<(double Score, bool Positive)> candidates, int positives, ThresholdGoal goal)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        ArgumentNullException.ThrowIfNull(goal);
        var positiveCandidates = candidates.Count(c => c.Positive);
        ArgumentOutOfRangeException.ThrowIfLessThan(positives, positiveCandidates);
        if (candidates.Count == 0 || positives == 0)
        {
            return null;
        }
        var sorted = candidates.OrderByDescending(c => c.Score).ToList();
        ChosenThreshold? best = null;
        ChosenThreshold? mostPrecise = null;
        var truePositives = 0;
        for (var i = 0; i < sorted.Count; i++)
        {
            truePositives += sorted[i].Positive ? 1 : 0;
            if (i + 1 < sorted.Count && sorted[i + 1].Score == sorted[i].Score)
            {
                continue; // a tie: one threshold answers all of them
            }
            var answered = i + 1;
            var precision = (double)truePositives / answered;
            var recall = (double)truePositives / positives;
            var f1 = truePositives == 0 ? 0 : 2 * precision * recall / (precision + recall);
            var candidate = new ChosenThreshold(Math.Floor(sorted[i].Score * 1000) / 1000, answered, precision, recall, f1, Reached: true);
            if (mostPrecise is null || precision >= mostPrecise.Precision)
            {
                mostPrecise = candidate with { Reached = false };
            }
            best = goal.Kind switch
            {
                ThresholdGoalKind.BestF1 when best is null || f1 >= best.F1 => candidate,
                ThresholdGoalKind.Precision when precision >= goal.TargetPrecision => candidate,
                _ => best,
            };
        }
        return best ?? mostPrecise;
    }
}

/// <summary>
/// One class's threshold decision (<c>train --class-thresholds</c>): its answers' figures at the single threshold, the
/// threshold of its own when it got one (<see cref="Own"/>), and why not when it did not (<see cref="Note"/>).
/// </summary>
public sealed record ClassThresholdChoice(string Label, int Support, ChosenThreshold AtSingle, ChosenThreshold? Own, string? Note)
{
    /// <summary>The threshold the class's answers must reach in serving.</summary>
    public double Threshold => Own?.Threshold ?? AtSingle.Threshold;
}

/// <summary>Per-class thresholds for a multiclass model, chosen on its judged predictions (<see cref="ThresholdSelection"/>).</summary>
public static class ClassThresholdChooser
{
    /// <summary>Fewest judged images of a class for it to get a threshold of its own.</summary>
    public const int MinSupport = 5;

    /// <summary>
    /// Each class's decision: the candidates are the judged images the model ranks that class first, scored by their
    /// top-1 probability; recall counts every image of the class. A class with fewer than <see cref="MinSupport"/> images,
    /// or one that cannot reach a precision goal, keeps <paramref name="singleThreshold"/>.
    /// </summary>
    public static IReadOnlyList<ClassThresholdChoice> Choose(IReadOnlyList<string> classes, IReadOnlyList<ValidationPrediction> predictions, double singleThreshold, ThresholdGoal goal)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(predictions);
        ArgumentNullException.ThrowIfNull(goal);
        var choices = new List<ClassThresholdChoice>(classes.Count);
        foreach (var label in classes)
        {
            var candidates = predictions.Where(p => p.Predicted == label).Select(p => (p.Confidence, p.Actual == label)).ToList();
            var support = predictions.Count(p => p.Actual == label);
            var atSingle = At(candidates, support, singleThreshold);
            if (support < MinSupport)
            {
                choices.Add(new ClassThresholdChoice(label, support, atSingle, null, $"{support} judged image(s), fewer than {MinSupport}: keeps the single threshold"));
                continue;
            }
            var own = ThresholdSelection.Choose(candidates, support, goal);
            choices.Add(own switch
            {
                null => new ClassThresholdChoice(label, support, atSingle, null, "the model never ranks it first: keeps the single threshold"),
                { Reached: false } => new ClassThresholdChoice(label, support, atSingle, null, string.Create(CultureInfo.InvariantCulture,
                    $"cannot reach precision {goal.TargetPrecision:P0} at any threshold (at best {own.Precision:P1} at {own.Threshold:0.###}): keeps the single threshold")),
                _ => new ClassThresholdChoice(label, support, atSingle, own, null),
            });
        }
        return choices;
    }

    /// <summary>The manifest's section: the classes with a threshold of their own.</summary>
    public static ClassThresholdSpec Spec(ThresholdGoal goal, IReadOnlyList<ClassThresholdChoice> choices) =>
        new(goal.ToString(), choices.Where(c => c.Own is not null).ToDictionary(c => c.Label, c => c.Own!.Threshold, StringComparer.Ordinal));

    /// <summary>The answers' figures at a given threshold.</summary>
    private static ChosenThreshold At(IReadOnlyList<(double Score, bool Positive)> candidates, int positives, double threshold)
    {
        var answered = candidates.Where(c => c.Score >= threshold).ToList();
        var truePositives = answered.Count(c => c.Positive);
        var precision = answered.Count == 0 ? 0 : (double)truePositives / answered.Count;
        var recall = positives == 0 ? 0 : (double)truePositives / positives;
        var f1 = truePositives == 0 ? 0 : 2 * precision * recall / (precision + recall);
        return new ChosenThreshold(threshold, answered.Count, precision, recall, f1, Reached: true);
    }
}
