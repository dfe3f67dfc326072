using System.Globalization;
using ScottPlot;
using ServerlessClassifier.ModelCore.Training;

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
        return plot.GetSvgXml(Width, Height);
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
}
