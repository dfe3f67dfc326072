using System.Text.Json;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// report.html of a head-mode run, as a new user reads it, rendered by headless Chromium: the verdict first (accuracy and
/// macro-F1 beside always answering the largest class, the calibration error beside the one before temperature scaling),
/// the probe's cross-validation curve instead of one-point epoch charts, precision-recall curves with average precision,
/// and the error gallery: a red square filed under "green" is the model's most confident mistake, shown with its labels
/// and its activation map; the data's warnings are styled as warnings, the rest as information.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ReportTests : IDisposable
{
    private readonly TempFolder temp = new();

    [Fact]
    public async Task HeadModeReport_LeadsWithTheVerdict_ShowsTheProbeCurvePrCurvesAndTheImagesItGotWrong()
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("green", new Rgb24(30, 200, 40)), ("blue", new Rgb24(30, 40, 220)));
        // A mislabelled image: a red square filed under green.
        File.Copy(Path.Combine(data, "red", "0.png"), Path.Combine(data, "green", "mislabelled.png"));
        var output = temp.Combine("model");

        var train = await new Cli().RunAsync("train", "--data", data, "--output", output, "--device", "cpu", "--class-thresholds", "f1");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        var path = Path.Combine(output, TrainCommand.ReportHtml);
        var html = await File.ReadAllTextAsync(path);
        // The verdict comes before every other section.
        var verdict = html.IndexOf("<h2>Verdict</h2>", StringComparison.Ordinal);
        Assert.True(verdict > 0 && verdict < html.IndexOf("<h2>", verdict + 1, StringComparison.Ordinal) && html.IndexOf("<h2>", StringComparison.Ordinal) == verdict, "the verdict is the first section");
        Assert.Contains("largest class always: 36.8%", html, StringComparison.Ordinal); // 7 green of 19 images, out-of-fold
        Assert.Contains("before temperature scaling:", html, StringComparison.Ordinal);
        // Head mode: the cross-validation curve, not one-point epoch charts.
        Assert.Contains("<h2>Cross-validation of the linear probe</h2>", html, StringComparison.Ordinal);
        Assert.Contains("aria-label=\"Out-of-fold loss against L2 strength\"><svg", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<h2>Training curves</h2>", html, StringComparison.Ordinal);
        Assert.Contains("aria-label=\"Precision-recall curves\"><svg", html, StringComparison.Ordinal);
        // Information and warnings are styled apart: the data's warnings (six images a class) as warnings, how the fit went as information.
        Assert.Contains("<p class=\"note warning\" role=\"alert\">Warning: Class &quot;red&quot; has only 6 image(s)", html, StringComparison.Ordinal);
        Assert.Contains("<p class=\"note info\">Linear probe: 5-fold cross-validation", html, StringComparison.Ordinal);
        // The error gallery, most confident mistake first: the mislabelled square, called red, true label green, with its map.
        Assert.Contains("<h2>Images it got wrong (", html, StringComparison.Ordinal);
        Assert.Contains("warm where the served model found the wrong label", html, StringComparison.Ordinal);
        var gallery = html[html.IndexOf("<div class=\"gallery\">", StringComparison.Ordinal)..];
        var first = gallery[..gallery.IndexOf("</figure>", StringComparison.Ordinal)];
        Assert.Contains("alt=\"green/mislabelled.png\" src=\"data:image/jpeg;base64,", first, StringComparison.Ordinal);
        Assert.Contains("<figcaption><b>red</b>", first, StringComparison.Ordinal);
        Assert.Contains("true: green", first, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson)));
        Assert.Equal("green/mislabelled.png", json.RootElement.GetProperty("errors")[0].GetProperty("source").GetString());
        Assert.InRange(json.RootElement.GetProperty("averagePrecision").GetProperty("blue").GetDouble(), 0.99, 1);

        // --class-thresholds f1: every class (six or more out-of-fold images each) has a threshold of its own, chosen on the
        // out-of-fold answers (19 images: too few for the single threshold, which is 0), shown in the report and applied by classify.
        Assert.Contains("<h2>Thresholds per class</h2>", html, StringComparison.Ordinal);
        Assert.Contains("Class thresholds (f1) on the 19 out-of-fold images' predictions: blue ", train.All, StringComparison.Ordinal);
        using var manifest = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "manifest.json")));
        Assert.Equal(0, manifest.RootElement.GetProperty("confidenceThreshold").GetDouble());
        var own = manifest.RootElement.GetProperty("classThresholds");
        Assert.Equal("f1", own.GetProperty("goal").GetString());
        var thresholds = own.GetProperty("thresholds").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetDouble());
        Assert.Equal(["blue", "green", "red"], thresholds.Keys.Order());
        Assert.All(thresholds.Values, t => Assert.InRange(t, 0.001, 1));
        Assert.Equal(3, json.RootElement.GetProperty("classThresholds").GetArrayLength());
        var classify = await new Cli().RunAsync("classify", "--model", output, "--json", Path.Combine(data, "blue", "1.png"));
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        var document = ServerlessClassifier.ModelCore.Inference.PredictionDocument.Parse(System.Text.Encoding.UTF8.GetBytes(classify.Out.Trim()));
        Assert.Equal("blue", document.Top![0].Label);
        Assert.Equal(thresholds["blue"], document.Threshold!.Value, 9);

        if (HeadlessChromium.Available)
        {
            var (dom, console) = await HeadlessChromium.RunWithConsoleAsync("--dump-dom", new Uri(path).AbsoluteUri);
            Assert.DoesNotContain("Content Security Policy", console, StringComparison.Ordinal);
            Assert.Contains("<h2>Verdict</h2>", dom, StringComparison.Ordinal);
            Assert.Equal(3, dom.Split("<svg").Length - 1 - CountSvgsOutsideCharts(dom)); // probe curve, precision-recall, reliability
            var screenshot = HeadlessChromium.ScreenshotPath(temp.Path, "report.png");
            await HeadlessChromium.RunAsync($"--screenshot={screenshot}", "--window-size=1200,2400", new Uri(path).AbsoluteUri);
            Assert.True(new FileInfo(screenshot).Length > 20_000, "the screenshot is (nearly) empty");
        }
    }

    /// <summary>The data table's share bars are small svgs too: one per label.</summary>
    private static int CountSvgsOutsideCharts(string dom) => dom.Split("<svg width=\"200\" height=\"10\"").Length - 1;

    public void Dispose() => temp.Dispose();
}
