using System.Globalization;
using ScottPlot;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Probe;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.TrainJob.Reports;

/// <summary>The report's per-epoch charts, drawn by ScottPlot as SVG to sit inside the self-contained HTML.</summary>
internal static class ReportCharts
{
    public const int Width = 560;
    public const int Height = 300;

    /// <summary>Train and validation values per epoch: integer epoch ticks, rounded values (percent for fractions).</summary>
    public static string EpochChart(string title, IReadOnlyList<EpochMetrics> history, Func<EpochMetrics, double> train, Func<EpochMetrics, double> validation, bool isFraction)
    {
        var plot = new Plot();
        double[] epochs = [.. history.Select(h => (double)h.Epoch)];
        AddSeries(plot, epochs, [.. history.Select(train)], "train", Colors.C0);
        AddSeries(plot, epochs, [.. history.Select(validation)], "validation", Colors.C1);
        plot.Title(title);
        plot.XLabel("epoch");
        plot.YLabel(isFraction ? title.ToLowerInvariant() + " (%)" : title.ToLowerInvariant());
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic { IntegerTicksOnly = true };
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => isFraction ? (v * 100).ToString("0", CultureInfo.InvariantCulture) : v.ToString("0.###", CultureInfo.InvariantCulture),
        };
        if (isFraction)
        {
            plot.Axes.SetLimitsY(0, 1.02);
        }
        if (epochs.Length == 1)
        {
            plot.Axes.SetLimitsX(epochs[0] - 1, epochs[0] + 1);
        }
        // Beside the plot, never over the curves.
        plot.ShowLegend(Edge.Right);
        return Svg(plot, Width, Height);
    }

    private static void AddSeries(Plot plot, double[] epochs, double[] values, string label, Color colour)
    {
        var finite = epochs.Zip(values).Where(p => double.IsFinite(p.Second)).ToArray();
        if (finite.Length == 0)
        {
            return;
        }
        var series = plot.Add.Scatter(finite.Select(p => p.First).ToArray(), finite.Select(p => p.Second).ToArray(), colour);
        series.LegendText = label;
        series.LineWidth = 2;
        series.MarkerSize = 6;
    }

    /// <summary>Equal-width confidence bins of the reliability diagram: the same bins as the expected calibration error.</summary>
    public const int ReliabilityBins = Calibration.Bins;

    /// <summary>
    /// Reliability diagram: for each confidence bin with predictions, the share that were right (bars) beside the
    /// diagonal a perfectly calibrated model follows; the bar's label is the bin's count.
    /// </summary>
    public static string Reliability(IReadOnlyList<ValidationPrediction> predictions)
    {
        var plot = new Plot();
        var bars = new List<Bar>();
        for (var bin = 0; bin < ReliabilityBins; bin++)
        {
            var low = (double)bin / ReliabilityBins;
            var high = (double)(bin + 1) / ReliabilityBins;
            var inBin = predictions.Where(p => (p.Confidence > low && p.Confidence <= high) || (bin == 0 && p.Confidence <= 0)).ToList();
            if (inBin.Count == 0)
            {
                continue;
            }
            bars.Add(new Bar
            {
                Position = (low + high) / 2,
                Value = (double)inBin.Count(p => p.Correct) / inBin.Count,
                Size = 0.9 / ReliabilityBins,
                FillColor = Colors.C0.WithAlpha(0.8),
                Label = inBin.Count.ToString(CultureInfo.InvariantCulture),
            });
        }
        var barPlot = plot.Add.Bars(bars);
        barPlot.LegendText = "share correct (count above the bar)";
        barPlot.ValueLabelStyle.FontSize = 10;
        var diagonal = plot.Add.Line(0, 0, 1, 1);
        diagonal.LineColor = Colors.C1;
        diagonal.LinePattern = LinePattern.Dashed;
        diagonal.LegendText = "perfectly calibrated";
        plot.Title("Reliability");
        plot.XLabel("confidence of the top label");
        plot.YLabel("share correct");
        plot.Axes.SetLimits(0, 1, 0, 1.15);
        plot.ShowLegend(Edge.Bottom);
        return Svg(plot, Width, Height + 40);
    }

    /// <summary>Precision against recall, one line per class (one against the rest), its average precision in the legend.</summary>
    public static string PrecisionRecall(IReadOnlyList<PrecisionRecallCurve> curves)
    {
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (var i = 0; i < curves.Count; i++)
        {
            var curve = curves[i];
            if (curve.Recall.Length == 0)
            {
                continue;
            }
            // From (0, first precision), a step down the points, as the curve is read.
            var line = plot.Add.Scatter((double[])[0, .. curve.Recall], (double[])[curve.Precision[0], .. curve.Precision], palette.GetColor(i));
            line.ConnectStyle = ConnectStyle.StepVertical;
            line.MarkerSize = 0;
            line.LineWidth = 2;
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"{Shorten(curve.Label)} (AP {curve.AveragePrecision:0.000})");
        }
        plot.Title("Precision-recall per class");
        plot.XLabel("recall");
        plot.YLabel("precision");
        plot.Axes.SetLimits(0, 1.02, 0, 1.05);
        plot.ShowLegend(Edge.Right);
        return Svg(plot, Width + 120, Height);
    }

    /// <summary>
    /// The linear probe's cross-validation: out-of-fold log-loss (and accuracy) against the L2 strength on a log axis,
    /// the chosen strength marked.
    /// </summary>
    public static string ProbeCurve(ServerlessClassifier.ModelCore.Checkpoints.ProbeSummary probe)
    {
        var plot = new Plot();
        var points = probe.Grid.OrderBy(p => p.Lambda).ToList();
        double[] x = [.. points.Select(p => Math.Log10(p.Lambda))];
        var loss = plot.Add.Scatter(x, [.. points.Select(p => p.Loss)], Colors.C0);
        loss.LegendText = "out-of-fold log-loss";
        loss.LineWidth = 2;
        loss.MarkerSize = 6;
        var chosen = plot.Add.VerticalLine(Math.Log10(probe.Lambda));
        chosen.Color = Colors.C1;
        chosen.LinePattern = LinePattern.Dashed;
        chosen.LegendText = string.Create(CultureInfo.InvariantCulture, $"chosen L2 {probe.Lambda:G3}");
        plot.Title(string.Create(CultureInfo.InvariantCulture, $"Linear probe: {probe.Folds}-fold cross-validation"));
        plot.XLabel("L2 strength");
        plot.YLabel("out-of-fold log-loss");
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericAutomatic
        {
            LabelFormatter = v => Math.Pow(10, v).ToString("G2", CultureInfo.InvariantCulture),
            IntegerTicksOnly = true,
        };
        plot.ShowLegend(Edge.Right);
        return Svg(plot, Width + 120, Height);
    }

    private static string Shorten(string label) => label.Length <= 24 ? label : label[..23] + "…";

    /// <summary>The plot as an <c>svg</c> element to place inside HTML (without the XML declaration a standalone file has).</summary>
    private static string Svg(Plot plot, int width, int height)
    {
        var svg = plot.GetSvgXml(width, height);
        var start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return start > 0 ? svg[start..] : svg;
    }
}
