using System.Globalization;
using System.Net;
using System.Text;
using ScottPlot;

namespace ServerlessClassifier.TrainJob.Commands.Monitor;

/// <summary>
/// The drift report as one self-contained HTML page: the verdict, then plots (ScottPlot SVG) with the tables beside them.
/// Its Content-Security-Policy (a meta element: the page is a file, no server sends headers for it) allows what it
/// uses and nothing else: its own style element and the plots' style attributes; no script, no request for anything
/// (labels and versions in it come from storage, so markup that slipped past the encoding could run nothing, nor load
/// or send anything).
/// </summary>
internal static class MonitorHtml
{
    /// <summary>The report's policy: styles inline, nothing else from anywhere.</summary>
    public const string ContentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

    private const int Width = 560;
    private const int Height = 300;

    public static string Render(DriftReport report)
    {
        var html = new StringBuilder();
        html.Append("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append(CultureInfo.InvariantCulture, $"<meta http-equiv=\"Content-Security-Policy\" content=\"{ContentSecurityPolicy}\">")
            .Append("<title>Drift report</title><style>")
            .Append("body{font-family:system-ui,sans-serif;margin:24px;color:#1d232b;max-width:1200px}h1{font-size:22px}.verdict{font-size:17px;font-weight:600;padding:10px 14px;border-radius:6px}")
            .Append(".drift{background:#fff1e0;color:#8a4500}.steady{background:#e7f6ec;color:#1b6b34}table{border-collapse:collapse;margin:8px 0 18px}td,th{border:1px solid #d5dbe1;padding:4px 8px;font-size:13px;text-align:right}")
            .Append("th{background:#f1f3f6}td:first-child,th:first-child{text-align:left}.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}figure{margin:0}</style></head><body>");
        var drifted = report.Checks.Any(c => c.Drifted);
        html.Append(CultureInfo.InvariantCulture, $"<h1>Drift report{(report.Model == ModelCore.Storage.ModelNames.Default ? "" : $" of model {E(report.Model)}")}</h1><p>{report.Predictions} predictions from {report.Since:yyyy-MM-dd HH:mm} to {report.Until:yyyy-MM-dd HH:mm} UTC, against model {E(report.ReferenceVersion ?? "(none)")}.</p>");
        html.Append(CultureInfo.InvariantCulture, $"<p class=\"verdict {(drifted ? "drift" : "steady")}\" id=\"verdict\">{E(report.Verdict)}</p><ul>");
        foreach (var check in report.Checks)
        {
            html.Append(CultureInfo.InvariantCulture, $"<li>{(check.Drifted ? "<strong>" : "")}{E(check.Line)}{(check.Drifted ? "</strong>" : "")}</li>");
        }
        html.Append("</ul>");

        html.Append("<h2>Volume per day</h2><div class=\"row\">").Append(Figure("Volume per day", VolumeChart(report))).Append("<table><tr><th>day</th><th>predictions</th><th>ok</th><th>rejected</th><th>unknown</th><th>out of distribution</th></tr>");
        foreach (var d in report.Days)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{d.Day}</td><td>{d.Predictions}</td><td>{d.Ok}</td><td>{d.Rejected}</td><td>{d.Unknown}</td><td>{d.OutOfDistribution}</td></tr>");
        }
        html.Append("</table></div>");

        html.Append("<h2>Class mix</h2><div class=\"row\">").Append(Figure("Class mix", ClassMixChart(report))).Append("<table><tr><th>label</th><th>training</th><th>uploads</th><th>uploads (count)</th></tr>");
        foreach (var c in report.ClassMix)
        {
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(c.Label)}</td><td>{P(c.Training)}</td><td>{P(c.Uploads)}</td><td>{c.UploadCount}</td></tr>");
        }
        html.Append("</table></div>");

        html.Append("<h2>Confidence and out-of-distribution scores</h2><div class=\"row\">")
            .Append(Figure("Confidence distribution", CdfChart("Top-1 confidence", "confidence", report.ValidationConfidence, "validation", report.UploadConfidence, null)))
            .Append(Figure("Out-of-distribution score distribution", CdfChart("Out-of-distribution score", "score (1 = cut-off)", report.TrainingOutOfDistribution, "training (out-of-fold)", report.UploadOutOfDistribution, 1.0)))
            .Append("</div>");
        html.Append(CultureInfo.InvariantCulture, $"<p>Unknown: {report.Unknown} of {report.Ok} classified ({P(Share(report.Unknown, report.Ok))}); out of distribution: {report.OutOfDistribution} of {report.Scored} scored ({P(Share(report.OutOfDistribution, report.Scored))}");
        html.Append(report.ExpectedOutOfDistributionShare is { } expected ? string.Create(CultureInfo.InvariantCulture, $", against {P(expected)} of the training images") : "").Append("); rejected: ")
            .Append(CultureInfo.InvariantCulture, $"{report.Rejected} ({P(Share(report.Rejected, report.Predictions))}).</p>");

        html.Append("<h2>Per model version</h2><div class=\"row\">").Append(Figure("Per model version", VersionChart(report)))
            .Append("<table><tr><th>version</th><th>role</th><th>predictions</th><th>unknown</th><th>out of distribution</th><th>rejected</th><th>median confidence</th><th>review labels agree</th><th>first</th><th>last</th></tr>");
        // During a canary release the current and canary versions come first, side by side.
        IEnumerable<VersionSummary> rows = report.Canary is { } canary ? [canary.Current, canary.Canary, .. report.Versions.Where(v => v.Role is null)] : report.Versions;
        foreach (var v in rows)
        {
            var role = v.Role == "canary" && report.Canary is { } c ? $"canary ({c.Traffic} %)" : v.Role ?? "";
            var agreement = v.ReviewAgreement is { } a ? string.Create(CultureInfo.InvariantCulture, $"{P(a)} of {v.Reviewed}") : "-";
            html.Append(CultureInfo.InvariantCulture, $"<tr><td>{E(v.Version)}</td><td>{E(role)}</td><td>{v.Predictions}</td><td>{P(v.UnknownShare)}</td><td>{P(v.OutOfDistributionShare)}</td><td>{P(v.RejectedShare)}</td><td>{v.MedianConfidence:0.00}</td><td>{agreement}</td><td>{v.First:yyyy-MM-dd HH:mm}</td><td>{v.Last:yyyy-MM-dd HH:mm}</td></tr>");
        }
        html.Append("</table></div></body></html>");
        return html.ToString();
    }

    private static string VolumeChart(DriftReport report)
    {
        var plot = new Plot();
        var positions = Enumerable.Range(0, report.Days.Count).Select(i => (double)i).ToArray();
        var total = plot.Add.Bars(positions, [.. report.Days.Select(d => (double)d.Predictions)]);
        total.LegendText = "predictions";
        var unknown = plot.Add.Bars(positions, [.. report.Days.Select(d => (double)(d.Unknown + d.Rejected))]);
        unknown.LegendText = "unknown or rejected";
        unknown.Color = Colors.C1;
        plot.Axes.Bottom.SetTicks(positions, [.. report.Days.Select(d => d.Day[5..])]);
        plot.Title("Volume per day");
        plot.YLabel("predictions");
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Edge.Right);
        return Svg(plot);
    }

    private static string ClassMixChart(DriftReport report) => PairedBars("Class mix (uploads by top label)", "share (%)",
        [.. report.ClassMix.Select(c => c.Label)], ("training", [.. report.ClassMix.Select(c => c.Training * 100)]), ("uploads", [.. report.ClassMix.Select(c => c.Uploads * 100)]));

    /// <summary>Cumulative distributions from quantiles: the share of values at or below x.</summary>
    private static string CdfChart(string title, string xLabel, Distribution? reference, string referenceLabel, Distribution? uploads, double? cutoff)
    {
        var plot = new Plot();
        double[] shares = [.. Enumerable.Range(0, 21).Select(q => q * 5.0)];
        if (reference is not null)
        {
            var line = plot.Add.Scatter(reference.Quantiles.ToArray(), shares, Colors.C0);
            line.LegendText = referenceLabel;
            line.LineWidth = 2;
        }
        if (uploads is not null)
        {
            var line = plot.Add.Scatter(uploads.Quantiles.ToArray(), shares, Colors.C1);
            line.LegendText = "uploads";
            line.LineWidth = 2;
        }
        if (cutoff is { } c)
        {
            var line = plot.Add.VerticalLine(c);
            line.LinePattern = LinePattern.Dashed;
            line.LegendText = "cut-off";
        }
        plot.Title(title);
        plot.XLabel(xLabel);
        plot.YLabel("share at or below (%)");
        plot.Axes.SetLimitsY(0, 102);
        plot.ShowLegend(Edge.Right);
        return Svg(plot);
    }

    private static string VersionChart(DriftReport report) => PairedBars("Per model version", "share of its predictions (%)",
        [.. report.Versions.Select(v => v.Version)], ("unknown", [.. report.Versions.Select(v => v.UnknownShare * 100)]), ("out of distribution", [.. report.Versions.Select(v => v.OutOfDistributionShare * 100)]));

    /// <summary>Two bars per category (e.g. training and uploads), side by side, with a legend beside the plot.</summary>
    private static string PairedBars(string title, string yLabel, IReadOnlyList<string> categories, (string Label, double[] Values) first, (string Label, double[] Values) second)
    {
        var plot = new Plot();
        var bars = new List<Bar>();
        for (var i = 0; i < categories.Count; i++)
        {
            bars.Add(new Bar { Position = (3 * i) + 0.5, Value = first.Values[i], FillColor = Colors.C0 });
            bars.Add(new Bar { Position = (3 * i) + 1.5, Value = second.Values[i], FillColor = Colors.C1 });
        }
        plot.Add.Bars(bars);
        plot.Axes.Bottom.SetTicks([.. Enumerable.Range(0, categories.Count).Select(i => (3.0 * i) + 1)], [.. categories.Select(c => c.Length > 15 ? c[..14] + "…" : c)]);
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = first.Label, FillColor = Colors.C0 });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = second.Label, FillColor = Colors.C1 });
        plot.Title(title);
        plot.YLabel(yLabel);
        plot.Axes.Margins(bottom: 0);
        plot.ShowLegend(Edge.Right);
        return Svg(plot);
    }

    private static string Figure(string label, string svg) => $"<figure role=\"img\" aria-label=\"{E(label)}\">{svg}</figure>";

    private static string Svg(Plot plot)
    {
        var svg = plot.GetSvgXml(Width, Height);
        var start = svg.IndexOf("<svg", StringComparison.Ordinal);
        return start > 0 ? svg[start..] : svg;
    }

    private static double Share(int part, int whole) => whole == 0 ? 0 : part / (double)whole;

    private static string E(string text) => WebUtility.HtmlEncode(text);

    private static string P(double value) => double.IsFinite(value) ? value.ToString("0.0%", CultureInfo.InvariantCulture) : "-";
}
