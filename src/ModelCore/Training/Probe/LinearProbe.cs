using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// What the linear probe produced: the head's weights on RAW backbone features (standardisation and
/// temperature folded in), the out-of-fold evidence the metrics come from, and the choices made.
/// </summary>
internal sealed record ProbeFit
{
    /// <summary>Classes x features, row-major: the exported Linear head's weight.</summary>
    public required float[] Weight { get; init; }

    public required float[] Bias { get; init; }

    public required double Lambda { get; init; }

    /// <summary>The temperature folded into the head: <see cref="TemperatureChoice.Temperature"/>.</summary>
    public double Temperature => TemperatureChoice.Temperature;

    /// <summary>How the temperature was chosen: fitted on the out-of-fold logits, cross-fitted over the same folds, 1 unless that helps.</summary>
    public required TemperatureChoice TemperatureChoice { get; init; }

    public required int Folds { get; init; }

    public required IReadOnlyList<ProbeGridPoint> Grid { get; init; }

    /// <summary>Uncalibrated out-of-fold logits of every original (unflipped) image at the chosen lambda, n x classes.</summary>
    public required double[] OutOfFoldLogits { get; init; }

    /// <summary>The fold of every original image (its out-of-fold logits come from <see cref="FoldHeads"/>[fold]).</summary>
    public required int[] FoldOf { get; init; }

    /// <summary>
    /// Each fold's model at the chosen lambda on RAW features (standardisation folded in, no temperature): the head that gave
    /// the out-of-fold logits of that fold's images, to judge another backbone's features of them (the int8 check).
    /// </summary>
    public required IReadOnlyList<Export.Quantization.LinearWeights> FoldHeads { get; init; }

    /// <summary>Out-of-fold probabilities of every original image after temperature scaling, n x classes.</summary>
    public required double[] OutOfFoldProbabilities { get; init; }

    public required double EceBefore { get; init; }

    public required double EceAfter { get; init; }

    public required double NllBefore { get; init; }

    public required double NllAfter { get; init; }

    /// <summary>True when the loss was class-weighted (largest class over 3x the smallest).</summary>
    public required bool ClassWeighted { get; init; }

    /// <summary>Rows the final model was fitted on (every image, plus its flipped copy when given).</summary>
    public required int FinalRows { get; init; }

    /// <summary>Accuracy of the final model on its own training rows (for information only).</summary>
    public required double FinalTrainAccuracy { get; init; }

    /// <summary>Mean cross-entropy of the final model on its own training rows (unregularised, uncalibrated).</summary>
    public required double FinalTrainLoss { get; init; }

    /// <summary>L-BFGS iterations of the final fit, and whether it converged.</summary>
    public required LbfgsOutcome FinalOutcome { get; init; }

    public required double Seconds { get; init; }
}

/// <summary>
/// The linear-probe protocol on cached features: standardise; multinomial logistic regression fitted
/// to convergence (full-batch L-BFGS); the L2 strength chosen by stratified k-fold cross-validation
/// over a log grid (lowest out-of-fold log-loss); temperature
/// scaling fitted on the out-of-fold logits and kept only when it lowers their cross-fitted log-loss
/// (<see cref="Calibration.ChooseTemperature"/>); then a refit on every image at the chosen strength.
/// Flipped images' features, when given, are extra training rows that stay in their image's fold
/// and are never scored. The loss is class-weighted (n / (classes n_c)) when the largest class has
/// over <see cref="ImbalanceRatioForWeights"/> times the images of the smallest.
/// </summary>
internal static class LinearProbe
{
    public const double ImbalanceRatioForWeights = 3;

    /// <summary>The sweep stops after this many consecutive grid points whose out-of-fold loss is above the best so far.</summary>
    public const int StopAfterWorse = 2;

    /// <summary>
    /// The sweep stops at the first point past the minimum whose out-of-fold loss is above the best by more than this many
    /// standard errors of the paired per-image difference: the loss has clearly turned, and weaker penalties (the slow
    /// fits) will not be chosen.
    /// </summary>
    public const double ClearRiseStandardErrors = PairedLosses.ClearStandardErrors;

    /// <summary>The L2 grid: 10^-5 .. 10^0 in half decades (11 values), strongest first (warm starts run weak-ward).</summary>
    public static IReadOnlyList<double> DefaultGrid { get; } = [.. Enumerable.Range(0, 11).Select(i => Math.Pow(10, -(i * 0.5)))];

    /// <param name="features">n x d features of the images.</param>
    /// <param name="flipped">n x d features of the same images flipped horizontally, or null.</param>
    /// <param name="scored">
    /// Null: every image's out-of-fold prediction chooses the L2 strength, fits the temperature and gives the
    /// calibration figures. Otherwise only these images' (in ascending order) do; every image still trains
    /// in the folds and in the refit. After a fine-tune, these are the images its backbone never trained on.
    /// </param>
    /// <param name="report">Told a line after each strength of the sweep and before the refit (a fit on many images takes minutes).</param>
    /// <param name="cancellationToken">Checked on every pass over the rows: a cancelled fit stops within one pass.</param>
    public static ProbeFit Fit(float[] features, int[] labels, int classes, float[]? flipped, int folds, int seed, IReadOnlyList<double>? grid = null, int[]? scored = null,
        Action<string>? report = null, CancellationToken cancellationToken = default)
    {
        var d = labels.Length == 0 ? 1 : features.Length / labels.Length;
        return Fit(new FeatureRows(d, features), labels, classes, flipped is null ? null : new FeatureRows(d, flipped), folds, seed, grid, scored, report, cancellationToken);
    }

    /// <inheritdoc cref="Fit(float[], int[], int, float[], int, int, IReadOnlyList{double}, int[], Action{string}, CancellationToken)"/>
    public static ProbeFit Fit(FeatureRows features, int[] labels, int classes, FeatureRows? flipped, int folds, int seed, IReadOnlyList<double>? grid = null, int[]? scored = null,
        Action<string>? report = null, CancellationToken cancellationToken = default) =>
        Finish(Sweep(features, labels, classes, flipped, folds, seed, grid, scored, report, cancellationToken: cancellationToken), report, cancellationToken);

    /// <summary>
    /// The cross-validated sweep over the L2 grid (what chooses the strength), without the calibration and the refit:
    /// <see cref="Finish"/> completes it. <see cref="FeatureChoice"/> sweeps every candidate and finishes only the one it keeps.
    /// </summary>
    /// <param name="toBeat">
    /// The lowest out-of-fold log-loss another candidate reached, or null. The sweep stops as soon as it has turned (a point
    /// above its best so far) while its best is no lower than this: the path has passed its minimum, which loses (ties go to
    /// the earlier candidate). This assumes the path has one minimum, as <see cref="StopAfterWorse"/> does (which allows a
    /// single bump).
    /// </param>
    public static ProbeSweep Sweep(FeatureRows features, int[] labels, int classes, FeatureRows? flipped, int folds, int seed, IReadOnlyList<double>? grid = null, int[]? scored = null,
        Action<string>? report = null, double? toBeat = null, CancellationToken cancellationToken = default)
    {
        var watch = Stopwatch.StartNew();
        var n = labels.Length;
        ArgumentOutOfRangeException.ThrowIfNotEqual(features.Count, n);
        ArgumentOutOfRangeException.ThrowIfNotEqual(flipped?.Count ?? n, n);
        grid ??= DefaultGrid;
        var lambdas = grid.OrderByDescending(l => l).ToList();
        var counts = Enumerable.Range(0, classes).Select(c => labels.Count(l => l == c)).ToArray();
        var classWeighted = counts.Min() > 0 && counts.Max() > ImbalanceRatioForWeights * counts.Min();
        var all = flipped is null ? features : features.Then(flipped);
        var rowLabels = flipped is null ? labels : [.. labels, .. labels];
        var foldOf = StratifiedFolds.Assign(labels, Math.Min(folds, n), seed);
        scored ??= [.. Enumerable.Range(0, n)];
        var scoredLabels = scored.Select(i => labels[i]).ToArray();
        double[] Scored(double[] all) => [.. scored.SelectMany(i => all.AsSpan(i * classes, classes).ToArray())];
        var k = foldOf.Max() + 1;

        // Folds first (their rows and standardisers), then the sweep from the strongest penalty to the weakest,
        // each fold warm-started from its previous fit. A fit reads its fold's standardised rows a block at a time
        // (StandardizedRows), so beyond the features the sweep holds only a block of doubles, not a float64 copy
        // of the features per fold (98 MB at 16,000 images of 768 features). The sweep stops once the out-of-fold loss has risen for
        // StopAfterWorse points in a row past its minimum, or at once when it rose clearly (ClearRiseStandardErrors): the
        // weak-penalty fits are the slow ones (on nearly separable data they run to the iteration cap) and, past the
        // minimum, are not chosen.
        var foldData = new List<(List<int> Rows, FeatureStandardizer Standardizer, long[] Y, double[]? Weights, List<int> HeldOut)>();
        for (var fold = 0; fold < k; fold++)
        {
            var trainImages = Enumerable.Range(0, n).Where(i => foldOf[i] != fold).ToList();
            var heldOut = Enumerable.Range(0, n).Where(i => foldOf[i] == fold).ToList();
            var rows = Rows(trainImages, n, flipped is not null);
            var y = rows.Select(r => (long)rowLabels[r]).ToArray();
            foldData.Add((rows, FeatureStandardizer.Compute(all, rows), y, Weights(y, classes, classWeighted), heldOut));
        }
        var starts = new double[]?[k];
        var oofLogits = new List<double[]>();
        var foldParameters = new List<double[][]>();
        var points = new List<ProbeGridPoint>();
        var worse = 0;
        foreach (var lambda in lambdas)
        {
            var logitsAtLambda = new double[n * classes];
            var parametersAtLambda = new double[k][];
            for (var fold = 0; fold < k; fold++)
            {
                var (rows, standardizer, y, weights, heldOut) = foldData[fold];
                // The first strength's folds start from fold 0's fit (their data overlap by (k - 2) / (k - 1)); later ones from their own previous fit.
                var model = SoftmaxRegression.Fit(new StandardizedRows(all, standardizer, rows), y, classes, lambda, weights, starts[fold] ?? starts[0], cancellationToken: cancellationToken);
                starts[fold] = parametersAtLambda[fold] = model.Parameters;
                var values = model.Logits(new StandardizedRows(features, standardizer, heldOut));
                for (var i = 0; i < heldOut.Count; i++)
                {
                    Array.Copy(values, i * classes, logitsAtLambda, heldOut[i] * classes, classes);
                }
            }
            oofLogits.Add(logitsAtLambda);
            foldParameters.Add(parametersAtLambda);
            var judged = Scored(logitsAtLambda);
            var point = new ProbeGridPoint(
                lambda,
                Calibration.TopOne(Calibration.Softmax(judged, classes), scoredLabels, classes).Count(p => p.Correct) / (double)scored.Length,
                Calibration.NegativeLogLikelihood(judged, scoredLabels, classes));
            var bestSoFar = points.Count == 0 ? -1 : points.Select((p, g) => (p, g)).MinBy(x => x.p.Loss).g;
            worse = bestSoFar >= 0 && point.Loss > points[bestSoFar].Loss ? worse + 1 : 0;
            var clearlyTurned = worse > 0 && ClearlyAbove(judged, Scored(oofLogits[bestSoFar]), scoredLabels, classes);
            points.Add(point);
            report?.Invoke(string.Create(CultureInfo.InvariantCulture,
                $"linear probe: L2 {lambda:G3} ({points.Count} of at most {lambdas.Count} strengths, {k} folds): out-of-fold accuracy {point.Accuracy:P1}, log-loss {point.Loss:F3}; {watch.Elapsed.TotalSeconds:F0} s"));
            var lost = worse > 0 && points[bestSoFar].Loss >= toBeat;
            if (worse >= StopAfterWorse || clearlyTurned || lost)
            {
                break;
            }
        }
        return new ProbeSweep(watch, features, labels, classes, flipped, all, rowLabels, foldOf, scored, scoredLabels, k, classWeighted,
            [.. foldData.Select(f => f.Standardizer)], oofLogits, foldParameters, points, lambdas);
    }

    /// <summary>The chosen strength's calibration (on the sweep's out-of-fold logits) and the refit on every image.</summary>
    public static ProbeFit Finish(ProbeSweep sweep, Action<string>? report = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(sweep);
        var (watch, _, labels, classes, flipped, all, rowLabels, foldOf, scored, scoredLabels, k, classWeighted, standardizers, oofLogits, foldParameters, points, lambdas) = sweep;
        var n = labels.Length;
        double[] Scored(double[] all) => [.. scored.SelectMany(i => all.AsSpan(i * classes, classes).ToArray())];
        var best = sweep.Best;
        var chosen = oofLogits[best];
        var chosenScored = Scored(chosen);
        var choice = Calibration.ChooseTemperature(chosenScored, scoredLabels, classes, [.. scored.Select(i => foldOf[i])]);
        var temperature = choice.Temperature;
        var before = Calibration.Softmax(chosenScored, classes);
        var after = Calibration.Softmax(chosenScored, classes, temperature);

        var allRows = Rows([.. Enumerable.Range(0, n)], n, flipped is not null);
        report?.Invoke(string.Create(CultureInfo.InvariantCulture, $"linear probe: refitting on all {allRows.Count} rows at L2 {lambdas[best]:G3}"));
        var final = FeatureStandardizer.Compute(all, allRows);
        var design = new StandardizedRows(all, final, allRows);
        var targets = allRows.Select(r => (long)rowLabels[r]).ToArray();
        // Warm-started from the folds' mean solution at the chosen strength (each fold saw (k - 1) / k of these rows): one fit
        // to the same optimum (the problem is strictly convex), not a walk down the path again.
        var start = new double[foldParameters[best][0].Length];
        foreach (var theta in foldParameters[best])
        {
            for (var i = 0; i < start.Length; i++)
            {
                start[i] += theta[i] / k;
            }
        }
        var fit = SoftmaxRegression.Fit(design, targets, classes, lambdas[best], Weights(targets, classes, classWeighted), start, cancellationToken: cancellationToken);
        var logits = fit.Logits(design);
        var rowLabelList = allRows.Select(r => rowLabels[r]).ToList();
        var trainAccuracy = Calibration.TopOne(Calibration.Softmax(logits, classes), rowLabelList, classes).Count(p => p.Correct) / (double)allRows.Count;
        var trainLoss = Calibration.NegativeLogLikelihood(logits, rowLabelList, classes);
        var (weight, bias) = final.Fold(fit.Weight(), fit.Bias(), temperature);
        return new ProbeFit
        {
            Weight = weight,
            Bias = bias,
            Lambda = lambdas[best],
            TemperatureChoice = choice,
            Folds = k,
            Grid = points,
            OutOfFoldLogits = chosen,
            FoldOf = foldOf,
            FoldHeads = [.. foldParameters[best].Select((theta, fold) => RawHead(theta, standardizers[fold], classes))],
            OutOfFoldProbabilities = Calibration.Softmax(chosen, classes, temperature),
            EceBefore = Calibration.ExpectedCalibrationError(Calibration.TopOne(before, scoredLabels, classes)),
            EceAfter = Calibration.ExpectedCalibrationError(Calibration.TopOne(after, scoredLabels, classes)),
            NllBefore = Calibration.NegativeLogLikelihood(chosenScored, scoredLabels, classes),
            NllAfter = Calibration.NegativeLogLikelihood(chosenScored, scoredLabels, classes, temperature),
            ClassWeighted = classWeighted,
            FinalRows = allRows.Count,
            FinalTrainAccuracy = trainAccuracy,
            FinalTrainLoss = trainLoss,
            FinalOutcome = fit.Outcome!,
            Seconds = watch.Elapsed.TotalSeconds,
        };
    }

    /// <summary>
    /// Whether the per-image log-loss of <paramref name="current"/> is above that of <paramref name="best"/> by more than
    /// <see cref="ClearRiseStandardErrors"/> standard errors of their paired difference.
    /// </summary>
    private static bool ClearlyAbove(double[] current, double[] best, int[] labels, int classes) =>
        PairedLosses.Of(Calibration.NegativeLogLikelihoods(current, labels, classes), Calibration.NegativeLogLikelihoods(best, labels, classes)).ClearlyPositive;

    /// <summary>A fit's parameters (W then b, on standardised features) as a head on raw features, at T = 1.</summary>
    private static Export.Quantization.LinearWeights RawHead(double[] parameters, FeatureStandardizer standardizer, int classes)
    {
        var d = standardizer.Mean.Length;
        var w = new double[classes, d];
        for (var c = 0; c < classes; c++)
        {
            for (var f = 0; f < d; f++)
            {
                w[c, f] = parameters[(c * d) + f];
            }
        }
        var (weight, bias) = standardizer.Fold(w, parameters.AsSpan(classes * d, classes).ToArray(), 1);
        return new Export.Quantization.LinearWeights(weight, bias);
    }

    /// <summary>Row indices into the stacked [features; flipped] matrix for the given images.</summary>
    private static List<int> Rows(List<int> images, int n, bool withFlipped) =>
        withFlipped ? [.. images, .. images.Select(i => i + n)] : images;

    /// <summary>Balanced class weights n / (classes n_c) per row when weighting, else null (all 1).</summary>
    private static double[]? Weights(long[] y, int classes, bool weighted)
    {
        if (!weighted)
        {
            return null;
        }
        var counts = new int[classes];
        foreach (var label in y)
        {
            counts[label]++;
        }
        return [.. y.Select(label => y.Length / (double)(classes * Math.Max(1, counts[label])))];
    }
}

/// <summary>What <see cref="LinearProbe.Sweep"/> leaves for <see cref="LinearProbe.Finish"/>: the folds, every strength's out-of-fold logits and fold models.</summary>
internal sealed record ProbeSweep(Stopwatch Watch, FeatureRows Features, int[] Labels, int Classes, FeatureRows? Flipped, FeatureRows All, int[] RowLabels, int[] FoldOf, int[] Scored,
    int[] ScoredLabels, int Folds, bool ClassWeighted, IReadOnlyList<FeatureStandardizer> Standardizers, IReadOnlyList<double[]> OutOfFoldLogits, IReadOnlyList<double[][]> FoldParameters,
    IReadOnlyList<ProbeGridPoint> Grid, IReadOnlyList<double> Lambdas)
{
    /// <summary>
    /// The strength with the lowest out-of-fold log-loss (a proper, smooth score; accuracy on a few hundred images moves in
    /// steps of one image and often ties across half the grid, seen on noisy synthetic sets); ties go to the stronger penalty.
    /// </summary>
    public int Best => Grid.Select((p, g) => (p, g)).OrderBy(x => x.p.Loss).ThenByDescending(x => x.p.Lambda).First().g;

    public double BestLoss => Grid[Best].Loss;
}
