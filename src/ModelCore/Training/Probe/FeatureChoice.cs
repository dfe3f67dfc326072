using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>A feature set the probe may read: the leading <paramref name="Columns"/> of the pooled features (the last stages first), with or without mirror-image rows.</summary>
internal sealed record FeatureSet(string Stages, int Columns, bool Flipped);

/// <summary>What <see cref="FeatureChoice.Fit"/> chose: the probe on the chosen set, widened to every pooled feature, and every candidate's figures.</summary>
internal sealed record ChosenFeatures(ProbeFit Fit, FeatureSet Chosen, IReadOnlyList<FeatureCandidate> Candidates);

/// <summary>
/// The head's features chosen per data set by the criterion that already chooses L2: each candidate feature set (the last
/// stage alone, the last two stages; with and without mirror images where their features were computed) gets its own
/// cross-validated probe on the SAME stratified folds, and the lowest out-of-fold log-loss at its chosen strength wins
/// (ties go to the earlier candidate, the fuller set). Every candidate reads columns of the one feature pass, so the
/// choice costs probe fits, not backbone passes. The chosen probe's weights are widened to the full feature width with
/// zeros on the columns it did not read, so the served graph and everything downstream (int8 check, explanation maps,
/// out-of-distribution statistics) stay as they are. Only the kept candidate is calibrated and refitted on every image;
/// a later candidate's sweep stops once its loss has turned while its best is no lower than the best so far
/// (<see cref="LinearProbe.Sweep"/>'s toBeat).
/// </summary>
internal static class FeatureChoice
{
    public static ChosenFeatures Fit(FeatureRows features, int[] labels, int classes, FeatureRows? flipped, IReadOnlyList<FeatureSet> candidates, int folds, int seed,
        Action<string>? report = null, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfZero(candidates.Count);
        var width = features.Width;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var results = new List<(FeatureSet Set, ProbeSweep Sweep)>();
        foreach (var set in candidates)
        {
            if (set.Flipped && flipped is null)
            {
                throw new ArgumentException($"Candidate {set.Stages} with mirror images, but no mirror-image features were computed.", nameof(candidates));
            }
            var rows = set.Columns == width ? features : Leading(features, set.Columns);
            var mirrored = !set.Flipped ? null : set.Columns == width ? flipped : Leading(flipped!, set.Columns);
            if (candidates.Count > 1)
            {
                report?.Invoke($"feature choice: {Describe(set)} ({results.Count + 1} of {candidates.Count})");
            }
            // A later candidate stops its sweep once it has clearly lost to the best so far (LinearProbe.Sweep's toBeat).
            double? toBeat = results.Count == 0 ? null : results.Min(r => r.Sweep.BestLoss);
            results.Add((set, LinearProbe.Sweep(rows, labels, classes, mirrored, folds, seed, report: report, toBeat: toBeat, cancellationToken: cancellationToken)));
        }
        var best = results.Select((r, i) => (r, i)).OrderBy(x => x.r.Sweep.BestLoss).ThenBy(x => x.i).First().r;
        // Only the kept candidate is calibrated and refitted on every image.
        var fit = LinearProbe.Finish(best.Sweep, report, cancellationToken);
        var summary = candidates.Count == 1 ? [] : results.Select(r => new FeatureCandidate(
            r.Set.Stages, r.Set.Flipped, r.Sweep.Lambdas[r.Sweep.Best], r.Sweep.BestLoss, r.Sweep.Grid[r.Sweep.Best].Accuracy, ReferenceEquals(r.Set, best.Set))).ToList();
        return new ChosenFeatures(Widen(fit with { Seconds = clock.Elapsed.TotalSeconds }, best.Set.Columns, width), best.Set, summary);
    }

    /// <summary>One line: the chosen set and every candidate's out-of-fold log-loss and accuracy.</summary>
    public static string Summary(ChosenFeatures choice) => string.Create(CultureInfo.InvariantCulture,
        $"Features: {Describe(choice.Chosen)}, chosen by out-of-fold log-loss among {string.Join(", ", choice.Candidates.Select(c => $"{(c.Flipped ? $"{c.Stages} with mirror images" : c.Stages)} {c.Loss:F3} ({c.Accuracy:P1})"))}.");

    public static string Describe(FeatureSet set) => set.Flipped ? $"{set.Stages} with mirror images" : set.Stages;

    /// <summary>The leading <paramref name="columns"/> of every row, copied (the last stage's features come first).</summary>
    private static FeatureRows Leading(FeatureRows rows, int columns)
    {
        var values = new float[rows.Count * columns];
        for (var i = 0; i < rows.Count; i++)
        {
            rows.Row(i)[..columns].CopyTo(values.AsSpan(i * columns, columns));
        }
        return new FeatureRows(columns, values);
    }

    /// <summary>A probe on the leading <paramref name="columns"/> as a probe on all <paramref name="width"/> features: zero weight on the others.</summary>
    private static ProbeFit Widen(ProbeFit fit, int columns, int width)
    {
        if (columns == width)
        {
            return fit;
        }
        return fit with
        {
            Weight = WidenRows(fit.Weight, fit.Bias.Length, columns, width),
            FoldHeads = [.. fit.FoldHeads.Select(h => new LinearWeights(WidenRows(h.Weight, h.Bias.Length, columns, width), h.Bias))],
        };
    }

    private static float[] WidenRows(float[] weight, int classes, int columns, int width)
    {
        var wide = new float[classes * width];
        for (var c = 0; c < classes; c++)
        {
            weight.AsSpan(c * columns, columns).CopyTo(wide.AsSpan(c * width, columns));
        }
        return wide;
    }
}
