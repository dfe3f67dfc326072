using ServerlessClassifier.ModelCore.Runtime;
using Xunit.Abstractions;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>The linear probe's parts on tiny synthetic feature sets (no images, no backbone): each test checks a property that a wrong implementation breaks.</summary>
[Collection(TorchTests.Collection)]
public sealed class LinearProbeTests(ITestOutputHelper output)
{
    [Fact]
    public void Lbfgs_FindsTheMinimumOfAnIllConditionedQuadratic()
    {
        // f(x) = sum_i c_i (x_i - i)^2 / 2, condition number 1e4.
        var c = new[] { 1e-2, 1, 10, 100 };
        var x = new double[4];
        var outcome = Lbfgs.Minimize((p, g) =>
        {
            double f = 0;
            for (var i = 0; i < 4; i++)
            {
                g[i] = c[i] * (p[i] - i);
                f += c[i] * (p[i] - i) * (p[i] - i) / 2;
            }
            return f;
        }, x, gradientTolerance: 1e-10);

        Assert.True(outcome.Converged, $"{outcome}");
        for (var i = 0; i < 4; i++)
        {
            Assert.Equal(i, x[i], 4);
        }
    }

    [Fact]
    public void CrossValidation_ChoosesAStrongerPenaltyOnNoisyDataThanOnSeparableData()
    {
        TorchRuntime.EnsureInitialized();
        var (clean, cleanLabels) = Blobs(perClass: 30, features: 10, separation: 8, labelNoise: 0, seed: 1);
        var (noisy, noisyLabels) = Blobs(perClass: 30, features: 40, separation: 0.6, labelNoise: 0.3, seed: 1);

        var separable = LinearProbe.Fit(clean, cleanLabels, 3, flipped: null, folds: 5, seed: 1);
        var hard = LinearProbe.Fit(noisy, noisyLabels, 3, flipped: null, folds: 5, seed: 1);

        output.WriteLine($"separable: L2 {separable.Lambda:G3}, {string.Join(" ", separable.Grid.Select(g => $"{g.Lambda:G2}:{g.Accuracy:F2}/{g.Loss:F2}"))}");
        output.WriteLine($"noisy:     L2 {hard.Lambda:G3}, {string.Join(" ", hard.Grid.Select(g => $"{g.Lambda:G2}:{g.Accuracy:F2}/{g.Loss:F2}"))}");
        Assert.True(hard.Lambda >= 100 * separable.Lambda, $"noisy {hard.Lambda} vs separable {separable.Lambda}");
        Assert.Equal(LinearProbe.DefaultGrid.Count, separable.Grid.Count);
    }

    [Fact]
    public void Sweep_StopsAtTheFirstPointPastTheMinimum_WhenTheLossHasClearlyTurned()
    {
        TorchRuntime.EnsureInitialized();
        // Noisy labels and many features: weaker penalties overfit, and the out-of-fold loss rises steeply past its minimum.
        var (noisy, labels) = Blobs(perClass: 30, features: 40, separation: 0.6, labelNoise: 0.3, seed: 1);

        var fit = LinearProbe.Fit(noisy, labels, 3, flipped: null, folds: 5, seed: 1);

        var best = fit.Grid.Select((p, g) => (p, g)).MinBy(x => x.p.Loss).g;
        output.WriteLine(string.Join(" ", fit.Grid.Select(g => $"{g.Lambda:G2}:{g.Loss:F3}")));
        Assert.Equal(fit.Lambda, fit.Grid[best].Lambda);
        Assert.True(fit.Grid[^1].Loss > fit.Grid[best].Loss + 0.05, "the last point is clearly worse");
        Assert.Equal(best + 2, fit.Grid.Count); // one point past the minimum, not StopAfterWorse
    }

    [Fact]
    public void Refit_UsesEveryImage_AndFlippedRows()
    {
        TorchRuntime.EnsureInitialized();
        var (x, y) = Blobs(perClass: 20, features: 10, separation: 1, labelNoise: 0.1, seed: 2);
        var fit = LinearProbe.Fit(x, y, 3, flipped: null, folds: 4, seed: 3, grid: [1e-1]);
        Assert.Equal(60, fit.FinalRows);
        Assert.Equal(60 * 3, fit.OutOfFoldLogits.Length);

        // The refit equals an independent fit on ALL images (standardised, then folded), and differs
        // from a fit that leaves one fold out: it is the model of every image, not of a fold.
        var everything = Enumerable.Range(0, 60).ToList();
        var withoutFold = everything.Where(i => i % 4 != 0).ToList();
        float[] Independent(List<int> rows)
        {
            var features = new FeatureRows(10, x);
            var standardizer = FeatureStandardizer.Compute(features, rows);
            var model = SoftmaxRegression.Fit(new StandardizedRows(features, standardizer, rows), [.. rows.Select(r => (long)y[r])], 3, 1e-1);
            return standardizer.Fold(model.Weight(), model.Bias(), fit.Temperature).Weight;
        }
        var all = Independent(everything);
        var part = Independent(withoutFold);
        var toAll = fit.Weight.Zip(all, (a, b) => Math.Abs(a - b)).Max();
        var toPart = fit.Weight.Zip(part, (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"max |W - W_all| {toAll:E2}, max |W - W_without_a_fold| {toPart:E2}");
        Assert.True(toAll < 1e-4, $"{toAll}");
        Assert.True(toPart > 100 * toAll, $"{toPart} vs {toAll}");

        var flipped = x.Select(v => v + 0.01f).ToArray();
        var withFlips = LinearProbe.Fit(x, y, 3, flipped, folds: 4, seed: 3, grid: [1e-1]);
        Assert.Equal(120, withFlips.FinalRows);
        Assert.Equal(60 * 3, withFlips.OutOfFoldLogits.Length); // flipped rows are trained on, never scored
    }

    [Fact]
    public void SoftmaxRegression_FittedBlockByBlock_EqualsTheFitOnTheWholeMatrix()
    {
        TorchRuntime.EnsureInitialized();
        var (x, y) = Blobs(perClass: 25, features: 10, separation: 1, labelNoise: 0.1, seed: 4);
        var features = new FeatureRows(10, x);
        var rows = Enumerable.Range(0, 75).Where(i => i % 5 != 2).Reverse().ToList(); // a fold's rows, in an order of their own
        var standardizer = FeatureStandardizer.Compute(features, rows);
        long[] labels = [.. rows.Select(r => (long)y[r])];
        var whole = new StandardizedRows(features, standardizer, rows, blockRows: 1000);
        var blocks = new StandardizedRows(features, standardizer, rows, blockRows: 7); // 60 rows: 8 full blocks and one of 4

        var one = SoftmaxRegression.Fit(whole, labels, 3, 1e-2);
        var many = SoftmaxRegression.Fit(blocks, labels, 3, 1e-2);

        var parameters = one.Parameters.Zip(many.Parameters, (a, b) => Math.Abs(a - b)).Max();
        var logits = one.Logits(whole).Zip(many.Logits(blocks), (a, b) => Math.Abs(a - b)).Max();
        output.WriteLine($"{one.Outcome} / {many.Outcome}; max |parameter difference| {parameters:E2}, max |logit difference| {logits:E2}");
        Assert.True(one.Outcome!.Converged && many.Outcome!.Converged);
        Assert.Contains(one.Parameters, p => Math.Abs(p) > 0.5); // a real fit, not the zero start
        Assert.True(parameters < 1e-6, $"{parameters}");
        Assert.True(logits < 1e-6, $"{logits}");
        Assert.Equal(rows.Count * 3, many.Logits(blocks).Length);
    }

    [Fact]
    public void Probe_OnRowsSpreadOverArrays_EqualsTheProbeOnOneArray()
    {
        TorchRuntime.EnsureInitialized();
        var (x, y) = Blobs(perClass: 20, features: 10, separation: 1, labelNoise: 0.1, seed: 6);
        var flipped = x.Select(v => v * 0.9f).ToArray();
        // The training split's array and the validation split's, as head mode holds them (split at an odd row).
        var (split, d) = (37, 10);
        var parts = new FeatureRows(d, x[..(split * d)], x[(split * d)..]);
        var flippedParts = new FeatureRows(d, flipped[..(split * d)], flipped[(split * d)..]);
        Assert.Equal(60, parts.Count);
        Assert.True(parts.Row(split).SequenceEqual(x.AsSpan(split * d, d)));
        Assert.True(parts.Then(flippedParts).Row(60 + 5).SequenceEqual(flipped.AsSpan(5 * d, d)));

        var together = LinearProbe.Fit(x, y, 3, flipped, folds: 4, seed: 3, grid: [1e-1, 1e-2]);
        var spread = LinearProbe.Fit(parts, y, 3, flippedParts, folds: 4, seed: 3, grid: [1e-1, 1e-2]);

        Assert.Equal(120, spread.FinalRows);
        // Blocks end where an array ends, so sums run in another order: equal to rounding, not bit for bit.
        Assert.Equal(together.Lambda, spread.Lambda);
        Assert.True(together.Weight.Zip(spread.Weight, (a, b) => Math.Abs(a - b)).Max() < 1e-6);
        Assert.True(together.Bias.Zip(spread.Bias, (a, b) => Math.Abs(a - b)).Max() < 1e-6);
        Assert.True(together.OutOfFoldLogits.Zip(spread.OutOfFoldLogits, (a, b) => Math.Abs(a - b)).Max() < 1e-9);
        Assert.Contains(spread.Weight, w => Math.Abs(w) > 0.1);
    }

    [Fact]
    public void Probe_ReportsEachStrength_AndStopsWhenCancelledMidSweep()
    {
        TorchRuntime.EnsureInitialized();
        var (x, y) = Blobs(perClass: 20, features: 10, separation: 1, labelNoise: 0.1, seed: 8);
        var lines = new List<string>();
        var finished = LinearProbe.Fit(x, y, 3, null, folds: 4, seed: 3, grid: [1e-1, 1e-2], report: lines.Add);
        Assert.Equal(finished.Grid.Count + 1, lines.Count); // one line per strength, one before the refit
        Assert.StartsWith("linear probe: L2 0.1 (1 of at most 2 strengths, 4 folds): out-of-fold accuracy", lines[0]);
        Assert.StartsWith("linear probe: refitting on all 60 rows", lines[^1]);

        // Cancelled when the first strength is reported: the sweep's next fit stops, nothing is returned.
        using var cancellation = new CancellationTokenSource();
        var seen = new List<string>();
        Assert.ThrowsAny<OperationCanceledException>(() => LinearProbe.Fit(x, y, 3, null, folds: 4, seed: 3, grid: [1e-1, 1e-2],
            report: line => { seen.Add(line); cancellation.Cancel(); }, cancellationToken: cancellation.Token));
        Assert.Single(seen);
    }

    [Fact]
    public void Temperature_LowersNllAndEce_OfAnOverconfidentModel()
    {
        const int classes = 4;
        var (overconfident, labels) = Overconfident(n: 2000, classes, factor: 4, seed: 5);

        var t = Calibration.FitTemperature(overconfident, labels, classes);
        var nllBefore = Calibration.NegativeLogLikelihood(overconfident, labels, classes);
        var nllAfter = Calibration.NegativeLogLikelihood(overconfident, labels, classes, t);
        var eceBefore = Calibration.ExpectedCalibrationError(Calibration.TopOne(Calibration.Softmax(overconfident, classes), labels, classes));
        var eceAfter = Calibration.ExpectedCalibrationError(Calibration.TopOne(Calibration.Softmax(overconfident, classes, t), labels, classes));
        output.WriteLine($"T {t:F3}; NLL {nllBefore:F3} -> {nllAfter:F3}; ECE {eceBefore:F3} -> {eceAfter:F3}");
        Assert.InRange(t, 3.4, 4.6);
        Assert.True(nllAfter < nllBefore - 0.1, $"{nllBefore} -> {nllAfter}");
        Assert.True(eceAfter < eceBefore / 3, $"{eceBefore} -> {eceAfter}");
    }

    [Fact]
    public void TemperatureChoice_KeepsOne_WhenTheFittedTemperatureWouldHurtHeldOutPredictions()
    {
        // Ten images of two classes, nine right at p = 0.73 and one confidently wrong (margin -3): over all ten the
        // log-loss prefers a softer T (the wrong image dominates it), but a T fitted without the wrong image sharpens
        // towards the bound and the wrong image, scored at it, costs far more: the fitted T would hurt held-out images.
        double[] margins = [1, 1, 1, 1, 1, 1, 1, 1, 1, -3];
        var logits = margins.SelectMany(m => new[] { m, 0.0 }).ToArray();
        var labels = Enumerable.Repeat(0, margins.Length).ToArray();

        var choice = Calibration.ChooseTemperature(logits, labels, 2, seed: 1);

        output.WriteLine(choice.Describe());
        Assert.True(Calibration.NegativeLogLikelihood(logits, labels, 2, choice.Fitted) < choice.NllAtOne, "in-sample, the fit does lower the log-loss");
        Assert.True(choice.HeldOutNll > choice.NllAtOne, $"{choice}");
        Assert.False(choice.Kept);
        Assert.Equal(1, choice.Temperature);
        Assert.StartsWith("temperature 1 kept", choice.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void TemperatureChoice_ReportsAFitAtItsBound_AndKeepsOneWhenItRaisesTheEce()
    {
        // 32 images of 10 classes, as a 4,096-wide head on a few images gives: 20 right by a small margin (2), 12 wrong
        // by a huge one (100). The wrong ones dominate the log-loss, which falls all the way to T = 20 (near uniform for
        // the right ones), while the confidence of the right answers falls far below their accuracy: the ECE rises.
        const int n = 32, classes = 10;
        var labels = Enumerable.Range(0, n).Select(i => i % classes).ToArray();
        var logits = new double[n * classes];
        for (var i = 0; i < n; i++)
        {
            if (i % 8 < 5)
            {
                logits[(i * classes) + labels[i]] = 2;
            }
            else
            {
                logits[(i * classes) + ((labels[i] + 1) % classes)] = 100;
            }
        }

        var choice = Calibration.ChooseTemperature(logits, labels, classes, seed: 1);

        output.WriteLine(choice.Describe());
        Assert.True(choice.AtBound, $"{choice}");
        Assert.Equal(Calibration.MaxTemperature, choice.Fitted, 1);
        Assert.True(choice.HeldOutNll < choice.NllAtOne, $"{choice}"); // the log-loss alone would take it
        Assert.True(choice.HeldOutEce > choice.EceAtOne, $"{choice}");
        Assert.False(choice.Kept);
        Assert.Equal(1, choice.Temperature);
        Assert.Contains("ran to the bound", choice.Describe(), StringComparison.Ordinal);
    }

    [Fact]
    public void TemperatureChoice_KeepsTheFittedTemperature_OfAnOverconfidentModel()
    {
        var (logits, labels) = Overconfident(n: 400, classes: 4, factor: 4, seed: 5);
        var choice = Calibration.ChooseTemperature(logits, labels, 4, seed: 1);
        output.WriteLine(choice.Describe());
        Assert.True(choice.Kept, $"{choice}");
        Assert.False(choice.AtBound);
        Assert.Equal(choice.Fitted, choice.Temperature);
        Assert.InRange(choice.Temperature, 3, 5);
    }

    [Fact]
    public void Ece_IsZeroWhenConfidenceMatchesAccuracy_AndLargeWhenItDoesNot()
    {
        var calibrated = Enumerable.Range(0, 100).Select(i => (i < 70, 0.7)).ToList();
        var overconfident = Enumerable.Range(0, 100).Select(i => (i < 70, 0.99)).ToList();
        Assert.Equal(0, Calibration.ExpectedCalibrationError(calibrated), 9);
        Assert.Equal(0.29, Calibration.ExpectedCalibrationError(overconfident), 9);
    }

    [Fact]
    public void FoldedStandardisation_GivesTheLogitsOfStandardiseThenHead()
    {
        var random = new Random(7);
        const int d = 16, classes = 3;
        var features = Enumerable.Range(0, 50 * d).Select(_ => (float)((random.NextDouble() * 5) + 2)).ToArray();
        var rows = Enumerable.Range(0, 50).ToList();
        var standardizer = FeatureStandardizer.Compute(new FeatureRows(d, features), rows);
        var weight = new double[classes, d];
        var bias = new double[classes];
        for (var c = 0; c < classes; c++)
        {
            bias[c] = random.NextDouble() - 0.5;
            for (var f = 0; f < d; f++)
            {
                weight[c, f] = random.NextDouble() - 0.5;
            }
        }
        const double temperature = 1.7;
        var (folded, foldedBias) = standardizer.Fold(weight, bias, temperature);
        var standardised = features.Select((v, j) => (v - standardizer.Mean[j % d]) / standardizer.Std[j % d]).ToArray();
        var worst = 0.0;
        for (var i = 0; i < 50; i++)
        {
            for (var c = 0; c < classes; c++)
            {
                double expected = bias[c], actual = foldedBias[c];
                for (var f = 0; f < d; f++)
                {
                    expected += weight[c, f] * standardised[(i * d) + f];
                    actual += folded[(c * d) + f] * features[(i * d) + f];
                }
                worst = Math.Max(worst, Math.Abs((expected / temperature) - actual));
            }
        }
        output.WriteLine($"max |logit difference| {worst:E2}");
        Assert.True(worst < 1e-4, $"{worst}");
        Assert.Contains(standardised.Take(d), v => Math.Abs(v) > 0.1); // not a trivial standardisation
    }

    [Fact]
    public void ClassWeights_AreUsedOnlyBeyondThreeToOne()
    {
        TorchRuntime.EnsureInitialized();
        var (x, y) = Blobs(perClass: 20, features: 6, separation: 2, labelNoise: 0, seed: 4);
        var balanced = LinearProbe.Fit(x, y, 3, null, folds: 3, seed: 1, grid: [1e-2]);
        // Keep 5 of the 20 images of class 2: 20 / 5 = 4 > 3.
        var keep = Enumerable.Range(0, y.Length).Where(i => y[i] != 2 || i % 20 < 5).ToList();
        var imbalanced = LinearProbe.Fit([.. keep.SelectMany(i => x.AsSpan(i * 6, 6).ToArray())], [.. keep.Select(i => y[i])], 3, null, folds: 3, seed: 1, grid: [1e-2]);
        Assert.False(balanced.ClassWeighted);
        Assert.True(imbalanced.ClassWeighted);
    }

    /// <summary>Labels drawn from softmax(z) (z uniform in [0, 3)); the logits returned are <paramref name="factor"/> z: over-confident by that factor.</summary>
    private static (double[] Logits, int[] Labels) Overconfident(int n, int classes, double factor, int seed)
    {
        var random = new Random(seed);
        var logits = new double[n * classes];
        var labels = new int[n];
        for (var i = 0; i < n; i++)
        {
            for (var c = 0; c < classes; c++)
            {
                logits[(i * classes) + c] = random.NextDouble() * 3;
            }
            var p = Calibration.Softmax(logits.AsSpan(i * classes, classes), classes);
            var u = random.NextDouble();
            labels[i] = classes - 1;
            for (var c = 0; c < classes; c++)
            {
                u -= p[c];
                if (u < 0)
                {
                    labels[i] = c;
                    break;
                }
            }
        }
        return ([.. logits.Select(z => z * factor)], labels);
    }

    /// <summary>Three Gaussian blobs (unit variance) whose means are <paramref name="separation"/> apart on the first features, with a fraction of labels replaced at random.</summary>
    [Fact]
    public void FeatureChoice_KeepsTheLastStageAlone_WhenTheOtherColumnsAreNoise_AndEveryColumnWhenTheyCarryTheClass()
    {
        TorchRuntime.EnsureInitialized();
        // 12 "last stage" columns that carry the class a little, then 36 columns that are either noise or carry it clearly.
        var (lead, labels) = Blobs(perClass: 20, features: 12, separation: 1.5, labelNoise: 0, seed: 4);
        var (noise, _) = Blobs(perClass: 20, features: 36, separation: 0, labelNoise: 0, seed: 5);
        var (strong, _) = Blobs(perClass: 20, features: 36, separation: 4, labelNoise: 0, seed: 6);
        FeatureSet[] candidates = [new("layer3+layer4", 48, false), new("layer4", 12, false)];

        var withNoise = FeatureChoice.Fit(new FeatureRows(48, Side(lead, noise, 12, 36)), labels, 3, null, candidates, folds: 5, seed: 1);
        var withSignal = FeatureChoice.Fit(new FeatureRows(48, Side(lead, strong, 12, 36)), labels, 3, null, candidates, folds: 5, seed: 1);

        output.WriteLine(string.Join("; ", withNoise.Candidates.Select(c => $"{c.Stages} {c.Loss:F3} {c.Accuracy:P0}{(c.Chosen ? " chosen" : "")}")));
        output.WriteLine(string.Join("; ", withSignal.Candidates.Select(c => $"{c.Stages} {c.Loss:F3} {c.Accuracy:P0}{(c.Chosen ? " chosen" : "")}")));
        Assert.Equal("layer4", withNoise.Chosen.Stages);
        Assert.Equal("layer3+layer4", withSignal.Chosen.Stages);
        foreach (var choice in new[] { withNoise, withSignal })
        {
            Assert.Equal(2, choice.Candidates.Count);
            Assert.Equal(choice.Candidates.MinBy(c => c.Loss)!.Stages, choice.Candidates.Single(c => c.Chosen).Stages);
        }
        // The served head reads all 48 columns; the one fitted on the last stage alone weighs the other 36 at zero, in the
        // refitted head and in every fold head (the int8 check reads those).
        Assert.Equal(3 * 48, withNoise.Fit.Weight.Length);
        for (var c = 0; c < 3; c++)
        {
            Assert.All(withNoise.Fit.Weight.AsSpan((c * 48) + 12, 36).ToArray(), w => Assert.Equal(0f, w));
            Assert.Contains(withNoise.Fit.Weight.AsSpan(c * 48, 12).ToArray(), w => w != 0);
            Assert.All(withNoise.Fit.FoldHeads, h => Assert.All(h.Weight.AsSpan((c * 48) + 12, 36).ToArray(), w => Assert.Equal(0f, w)));
        }
        Assert.Contains(withSignal.Fit.Weight.AsSpan(12, 36).ToArray(), w => w != 0);

        static float[] Side(float[] left, float[] right, int leftWidth, int rightWidth)
        {
            var rows = left.Length / leftWidth;
            var joined = new float[rows * (leftWidth + rightWidth)];
            for (var i = 0; i < rows; i++)
            {
                left.AsSpan(i * leftWidth, leftWidth).CopyTo(joined.AsSpan(i * (leftWidth + rightWidth)));
                right.AsSpan(i * rightWidth, rightWidth).CopyTo(joined.AsSpan((i * (leftWidth + rightWidth)) + leftWidth));
            }
            return joined;
        }
    }

    /// <summary>
    /// A candidate whose out-of-fold loss has turned while its best is above another candidate's stops its sweep there (it
    /// cannot win), and the choice is the one full sweeps make: the noise columns' candidate, swept after the last stage
    /// alone, stops one point past its own minimum, where on its own it runs on.
    /// </summary>
    [Fact]
    public void FeatureChoice_StopsTheSweepOfACandidateThatHasLost_AndChoosesAsFullSweepsDo()
    {
        TorchRuntime.EnsureInitialized();
        var (lead, labels) = Blobs(perClass: 20, features: 12, separation: 1.5, labelNoise: 0, seed: 4);
        var (noise, _) = Blobs(perClass: 20, features: 36, separation: 0, labelNoise: 0, seed: 5);
        var wide = new float[labels.Length * 48];
        for (var i = 0; i < labels.Length; i++)
        {
            lead.AsSpan(i * 12, 12).CopyTo(wide.AsSpan(i * 48));
            noise.AsSpan(i * 36, 36).CopyTo(wide.AsSpan((i * 48) + 12));
        }
        var rows = new FeatureRows(48, wide);

        var alone = LinearProbe.Sweep(new FeatureRows(12, lead), labels, 3, null, folds: 5, seed: 1);
        var full = LinearProbe.Sweep(rows, labels, 3, null, folds: 5, seed: 1);
        var stopped = LinearProbe.Sweep(rows, labels, 3, null, folds: 5, seed: 1, toBeat: alone.BestLoss);
        var choice = FeatureChoice.Fit(rows, labels, 3, null, [new("layer4", 12, false), new("layer3+layer4", 48, false)], folds: 5, seed: 1);

        output.WriteLine($"alone {alone.BestLoss:F3}; full: {string.Join(" ", full.Grid.Select(g => $"{g.Lambda:G2}:{g.Loss:F3}"))}; stopped: {string.Join(" ", stopped.Grid.Select(g => $"{g.Lambda:G2}:{g.Loss:F3}"))}");
        Assert.True(full.BestLoss > alone.BestLoss, "the noise columns' candidate loses");
        Assert.Equal(stopped.Best + 2, stopped.Grid.Count); // one point past its minimum
        Assert.True(stopped.Grid.Count < full.Grid.Count, $"{stopped.Grid.Count} points, the full sweep {full.Grid.Count}");
        Assert.Equal(full.Grid.Take(stopped.Grid.Count), stopped.Grid);
        Assert.Equal(full.Lambdas[full.Best], stopped.Lambdas[stopped.Best]);
        Assert.Equal("layer4", choice.Chosen.Stages);
        Assert.Equal(alone.BestLoss, choice.Candidates.Single(c => c.Chosen).Loss);
    }

    private static (float[] Features, int[] Labels) Blobs(int perClass, int features, double separation, double labelNoise, int seed)
    {
        var random = new Random(seed);
        var x = new float[3 * perClass * features];
        var y = new int[3 * perClass];
        for (var i = 0; i < y.Length; i++)
        {
            var c = i / perClass;
            for (var f = 0; f < features; f++)
            {
                var gaussian = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                x[(i * features) + f] = (float)(gaussian + (f == c ? separation : 0));
            }
            y[i] = random.NextDouble() < labelNoise ? random.Next(3) : c;
        }
        return (x, y);
    }
}
