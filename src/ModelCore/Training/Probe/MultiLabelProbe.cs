using System.Globalization;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>One label's probe in a <see cref="MultiLabelFit"/>.</summary>
/// <param name="Label">The label.</param>
/// <param name="Lambda">The L2 strength its cross-validation chose.</param>
/// <param name="Temperature">The calibration temperature folded into its weights (1: none kept).</param>
/// <param name="ClassWeighted">Whether its loss weighted the rarer side up (one side over 3x the other).</param>
/// <param name="Positives">Images carrying the label.</param>
/// <param name="Threshold">Its threshold, chosen on its out-of-fold probabilities.</param>
/// <param name="Rule">How the threshold was chosen (best F1, or the target precision and whether it was reached).</param>
public sealed record LabelProbe(string Label, double Lambda, double Temperature, bool ClassWeighted, int Positives, double Threshold, string Rule);

/// <summary>A multi-label head: one calibrated binary probe per label, folded into one linear layer (labels x features) whose outputs are sigmoided.</summary>
internal sealed record MultiLabelFit
{
    /// <summary>labels x features, row-major, on raw features (standardisation and temperature folded in).</summary>
    public required float[] Weight { get; init; }

    public required float[] Bias { get; init; }

    /// <summary>n x labels out-of-fold probabilities (calibrated), row-major: every image scored by probes that never saw it.</summary>
    public required double[] OutOfFoldProbabilities { get; init; }

    public required IReadOnlyList<LabelProbe> Probes { get; init; }

    public IReadOnlyList<double> Thresholds => [.. Probes.Select(p => p.Threshold)];

    public required int Folds { get; init; }

    public required double Seconds { get; init; }

    /// <summary>
    /// Per label, each fold's head on RAW features as one row (the difference of its probe's two rows; no temperature): the head
    /// that gave the out-of-fold probabilities of that fold's images, to judge the int8 graph's features of them.
    /// </summary>
    public required IReadOnlyList<IReadOnlyList<Export.Quantization.LinearWeights>> FoldHeads { get; init; }

    /// <summary>Per label, the fold of every image (its probe's folds are stratified by that label).</summary>
    public required IReadOnlyList<int[]> FoldOf { get; init; }
}

/// <summary>
/// Multi-label's fit on frozen features: for each label, the linear-probe protocol (<see cref="LinearProbe"/>: standardised
/// features, L2 strength by stratified cross-validation, the loss weighted per label when one side has over 3x the
/// images of the other, temperature scaling on the out-of-fold logits, a refit on every image) on the binary problem
/// "carries the label or not". A two-class softmax is a sigmoid of the logit difference, so each label's head row is
/// the difference of its two rows. Each label's threshold is chosen on its out-of-fold probabilities.
/// </summary>
internal static class MultiLabelProbe
{
    /// <param name="features">n rows of features.</param>
    /// <param name="truth">n x labels, row-major: whether image i carries label l.</param>
    /// <param name="labels">The labels.</param>
    /// <param name="flipped">Mirrored images' features, extra training rows, or null.</param>
    /// <param name="targetPrecision">Null: each threshold gives the best out-of-fold F1; else the lowest threshold whose out-of-fold precision reaches it.</param>
    /// <param name="scored">
    /// The images whose out-of-fold probabilities choose each probe's L2 strength, temperature and threshold (a fine-tune's refit: the
    /// validation images, which the backbone never trained on); null: every image. A label that no scored image carries (or that all
    /// carry) keeps the threshold 0.5.
    /// </param>
    public static MultiLabelFit Fit(FeatureRows features, bool[] truth, IReadOnlyList<string> labels, FeatureRows? flipped, int folds, int seed, double? targetPrecision,
        int[]? scored = null, Action<string>? report = null, CancellationToken cancellationToken = default)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var count = labels.Count;
        var n = features.Count;
        var d = features.Width;
        ArgumentOutOfRangeException.ThrowIfNotEqual(truth.Length, n * count);
        var weight = new float[count * d];
        var bias = new float[count];
        var probabilities = new double[n * count];
        var probes = new List<LabelProbe>();
        var foldHeads = new List<IReadOnlyList<Export.Quantization.LinearWeights>>();
        var foldOf = new List<int[]>();
        var usedFolds = 0;
        for (var l = 0; l < count; l++)
        {
            var y = new int[n];
            for (var i = 0; i < n; i++)
            {
                y[i] = truth[(i * count) + l] ? 1 : 0;
            }
            var fit = LinearProbe.Fit(features, y, 2, flipped, folds, seed, scored: scored, cancellationToken: cancellationToken);
            usedFolds = fit.Folds;
            for (var f = 0; f < d; f++)
            {
                weight[(l * d) + f] = fit.Weight[d + f] - fit.Weight[f];
            }
            bias[l] = fit.Bias[1] - fit.Bias[0];
            foldHeads.Add([.. fit.FoldHeads.Select(h => new Export.Quantization.LinearWeights(
                [.. Enumerable.Range(0, d).Select(f => h.Weight[d + f] - h.Weight[f])], [h.Bias[1] - h.Bias[0]]))]);
            foldOf.Add(fit.FoldOf);
            var scores = new double[n];
            for (var i = 0; i < n; i++)
            {
                scores[i] = probabilities[(i * count) + l] = fit.OutOfFoldProbabilities[(i * 2) + 1];
            }
            var judged = scored ?? [.. Enumerable.Range(0, n)];
            var carrying = judged.Count(i => y[i] == 1);
            var (threshold, rule) = carrying == 0 || carrying == judged.Length
                ? (DefaultThreshold, string.Create(CultureInfo.InvariantCulture, $"0.5: {(carrying == 0 ? "none" : "all")} of the {judged.Length} images that choose it carry it"))
                : ChooseThreshold([.. judged.Select(i => scores[i])], [.. judged.Select(i => y[i] == 1)], targetPrecision);
            var probe = new LabelProbe(labels[l], fit.Lambda, fit.Temperature, fit.ClassWeighted, y.Sum(), threshold, rule);
            probes.Add(probe);
            report?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"multi-label probe {l + 1} of {count}, \"{labels[l]}\" ({probe.Positives} of {n} images): L2 {fit.Lambda:G3}, temperature {fit.Temperature:F2}{(fit.ClassWeighted ? ", class-weighted" : "")}; threshold {threshold:F3} ({rule}); {watch.Elapsed.TotalSeconds:F0} s"));
        }
        return new MultiLabelFit
        {
            Weight = weight,
            Bias = bias,
            OutOfFoldProbabilities = probabilities,
            Probes = probes,
            Folds = usedFolds,
            Seconds = watch.Elapsed.TotalSeconds,
            FoldHeads = foldHeads,
            FoldOf = foldOf,
        };
    }

    /// <summary>The threshold best-F1 thresholds are shrunk toward: a calibrated probe's even odds.</summary>
    internal const double DefaultThreshold = 0.5;

    /// <summary>How many positives 0.5 counts as in a best-F1 threshold's shrinkage (<see cref="ChooseThreshold"/>).</summary>
    internal const int ShrinkagePositives = 10;

    /// <summary>
    /// A label's threshold over every image's out-of-fold probability, by the one chooser per-class thresholds use too
    /// (<see cref="ThresholdSelection"/>). With a target precision, the lowest threshold that reaches it. With best F1 (the
    /// default), the best-F1 threshold t shrunk toward 0.5 by the label's positives p: (p t + 10 x 0.5) / (p + 10), as if
    /// 0.5 had been seen on 10 positives. A best-F1 threshold chosen on a few positives fits their noise (the benchmark's
    /// black: 0.939 on 23 positives, 20 % recall on held-out images); with many positives it stays nearly as chosen.
    /// The rule and its 10 were chosen on the benchmark's training images alone (nested out-of-fold F1; see
    /// docs/benchmarks-accuracy.md), not on its held-out ones.
    /// </summary>
    internal static (double Threshold, string Rule) ChooseThreshold(double[] scores, bool[] positive, double? targetPrecision)
    {
        var goal = targetPrecision is { } target ? new ThresholdGoal(ThresholdGoalKind.Precision, target) : ThresholdGoal.BestF1;
        var positives = positive.Count(p => p);
        var chosen = ThresholdSelection.Choose([.. scores.Zip(positive)], positives, goal)
            ?? throw new InvalidOperationException("A label's threshold needs images that carry it.");
        if (goal.Kind == ThresholdGoalKind.Precision)
        {
            return (chosen.Threshold, chosen.Reached ? string.Create(CultureInfo.InvariantCulture, $"precision at least {goal.TargetPrecision:P0}")
                : string.Create(CultureInfo.InvariantCulture, $"precision {goal.TargetPrecision:P0} not reached out-of-fold; the most precise threshold"));
        }
        var shrunk = Math.Floor((((positives * chosen.Threshold) + (ShrinkagePositives * DefaultThreshold)) / (positives + ShrinkagePositives)) * 1000) / 1000;
        return (shrunk, string.Create(CultureInfo.InvariantCulture, $"best F1 ({chosen.Threshold:0.###}) shrunk toward 0.5 by its {positives} positives against 0.5's {ShrinkagePositives}"));
    }
}
