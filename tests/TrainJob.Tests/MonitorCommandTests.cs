using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// <c>trainjob monitor</c> against Azurite: prediction documents whose class mix and confidence moved away from the
/// published model's training statistics give the drift verdict, the per-version and per-day figures, a JSON beside
/// the HTML, and an HTML report that headless Chromium renders with its plots (and screenshots).
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class MonitorCommandTests : IDisposable
{
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Monitor_ClassMixAndConfidenceMoved_SaysSoAndWritesReportAndJson()
    {
        var cli = new Cli();
        var folder = TestModels.SaveFolder(temp.Combine("model"), 0);
        // The reference statistics a trained model records: the training mix and the validation confidences.
        var path = Path.Combine(folder, ModelManifest.FileName);
        var manifest = JsonNode.Parse(await File.ReadAllTextAsync(path))!;
        manifest["training"] = new JsonObject { ["trainCounts"] = new JsonObject { ["alpha"] = 40, ["beta"] = 40, ["gamma"] = 20 } };
        manifest["metrics"] = new JsonObject { ["confidenceQuantiles"] = new JsonArray([.. Enumerable.Range(0, 21).Select(i => JsonValue.Create(0.8 + (i * 0.01)))]) };
        await File.WriteAllTextAsync(path, manifest.ToJsonString());
        var models = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.ModelsContainer);
        var store = new ModelStore(models);
        var version = await store.PublishAsync(folder);

        // 60 uploads over two days: 75 % called gamma (20 % of the training images), at a median confidence of 0.6.
        var predictions = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.PredictionsContainer);
        await predictions.CreateAsync();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 60; i++)
        {
            var label = i < 45 ? "gamma" : i < 55 ? "alpha" : "beta";
            var confidence = 0.5 + (i % 5 * 0.05);
            await PredictionBlobs.TryWriteAsync(predictions, new PredictionDocument
            {
                Status = PredictionStatus.Ok,
                Image = $"upload-{i:D2}.png",
                ImageVersion = "0x1",
                ModelVersion = i < 20 ? "20240101-000000-000000" : version,
                Label = confidence < 0.55 ? "unknown" : label,
                Confidence = confidence,
                IsUnknown = confidence < 0.55,
                Threshold = 0.55,
                Top = [new LabelProbability(label, confidence), new LabelProbability(label == "alpha" ? "beta" : "alpha", 1 - confidence)],
                ClassifiedUtc = now.AddHours(-(i % 2) * 24),
                Source = PredictionSource.BlobTrigger,
            });
        }

        var html = temp.Combine("report.html");
        var run = await cli.RunAsync("monitor", "--since", "3d", "--html", html);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        var verdict = run.Out.Split('\n').First(l => !l.StartsWith("predictions: ", StringComparison.Ordinal)); // after the progress lines
        Assert.StartsWith("class mix drifted: gamma 20 % -> 75 %", verdict, StringComparison.Ordinal);
        Assert.Contains("confidence dropped: median 0.90 on validation -> 0.60 on uploads", verdict, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(temp.Combine("report.json")));
        Assert.Equal(60, json.RootElement.GetProperty("predictions").GetInt32());
        Assert.Equal(2, json.RootElement.GetProperty("days").GetArrayLength());
        Assert.Equal(2, json.RootElement.GetProperty("versions").GetArrayLength());
        Assert.Equal(12, json.RootElement.GetProperty("unknown").GetInt32());
        Assert.Equal(verdict, json.RootElement.GetProperty("verdict").GetString());

        // The report's labels and versions come from storage: its Content-Security-Policy allows no script and no request.
        Assert.Contains("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none';", await File.ReadAllTextAsync(html), StringComparison.Ordinal);

        // A real browser renders the report: the verdict and the five plots are in its DOM, the policy blocked nothing
        // the page uses (Chromium logs every violation to the console), and it takes a screenshot.
        if (HeadlessChromium.Available)
        {
            var (dom, console) = await HeadlessChromium.RunWithConsoleAsync("--dump-dom", new Uri(html).AbsoluteUri);
            Assert.DoesNotContain("Content Security Policy", console, StringComparison.Ordinal);
            Assert.Contains(verdict.Replace(">", "&gt;", StringComparison.Ordinal), dom, StringComparison.Ordinal);
            Assert.Equal(5, dom.Split("<svg").Length - 1);
            var screenshot = HeadlessChromium.ScreenshotPath(temp.Path, "monitor.png");
            await HeadlessChromium.RunAsync($"--screenshot={screenshot}", "--window-size=1200,1500", new Uri(html).AbsoluteUri);
            Assert.True(new FileInfo(screenshot).Length > 20_000, "the screenshot is (nearly) empty");
        }
    }

    public void Dispose() => temp.Dispose();
}
