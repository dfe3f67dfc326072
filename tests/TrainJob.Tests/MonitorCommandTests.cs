using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
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

    [Fact]
    public async Task Monitor_NamedModelDuringACanary_ComparesCanaryAndCurrentSideBySide_AndLeavesOtherModelsOut()
    {
        var cli = new Cli();
        var models = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.ModelsContainer);
        var cats = new ModelStore(models, "cats");
        await new ModelStore(models).PublishAsync(TestModels.SaveFolder(temp.Combine("default"), 0), version: "d1");
        await cats.PublishAsync(TestModels.SaveFolder(temp.Combine("c1"), 0), version: "c1");
        await cats.PublishAsync(TestModels.SaveFolder(temp.Combine("c2"), 1), makeCurrent: false, version: "c2");
        await cats.PromoteAsync("c2", 10);

        // cats: 36 uploads by c1 (confident, 1 in 6 unknown), 4 by the canary c2 (1 unknown, 1 out of distribution);
        // the default model's 20 uploads, all unknown, would change every figure if they were counted.
        var predictions = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.PredictionsContainer);
        await predictions.CreateAsync();
        var now = DateTimeOffset.UtcNow;
        for (var i = 0; i < 60; i++)
        {
            var (model, version, unknown) = i < 36 ? ("cats", "c1", i % 6 == 0) : i < 40 ? ("cats", "c2", i == 36) : (null, "d1", true);
            var confidence = unknown ? 0.4 : i < 36 ? 0.9 : 0.7;
            await PredictionBlobs.TryWriteAsync(predictions, new PredictionDocument
            {
                Status = PredictionStatus.Ok,
                Image = model is null ? $"upload-{i:D2}.png" : $"cats/upload-{i:D2}.png",
                ImageVersion = "0x1",
                ModelVersion = version,
                Model = model,
                Label = unknown ? "unknown" : "alpha",
                Confidence = confidence,
                IsUnknown = unknown,
                Threshold = 0.5,
                OutOfDistribution = i == 37 ? 1.5 : 0.5,
                Top = [new LabelProbability("alpha", confidence), new LabelProbability("beta", 1 - confidence)],
                ClassifiedUtc = now.AddMinutes(-i),
                Source = PredictionSource.BlobTrigger,
            });
        }
        // Review labels: c1's two suggestions confirmed; one of c2's two corrected; a rejected label and the default model's label not counted.
        var labels = new ReviewLabels(TestStorage.CreateServiceClient().GetBlobContainerClient(cli.ReviewContainer));
        await labels.Container.CreateAsync();
        var person = new ReviewActor { Id = "id", Name = "Rita", Source = ReviewActor.Sources.CommandLine };
        var n = 0;
        foreach (var (model, version, label, decision) in new (string?, string, string, string)[]
        {
            ("cats", "c1", "alpha", LabelDecisions.Approved), ("cats", "c1", "alpha", LabelDecisions.Approved), ("cats", "c2", "alpha", LabelDecisions.Approved),
            ("cats", "c2", "beta", LabelDecisions.Approved), ("cats", "c2", "beta", LabelDecisions.Rejected), (null, "c2", "alpha", LabelDecisions.Approved),
        })
        {
            var image = $"img-{n++}.png";
            Assert.True(await labels.TryRecordAsync(new LabelRecord
            {
                Id = LabelRecord.IdFor(image, "0x1"), Image = image, ImageVersion = "0x1", ModelVersion = version, Model = model, SuggestedLabel = "alpha", Label = label,
                LabelledBy = person, LabelledUtc = now, Decision = decision, DecidedBy = person, DecidedUtc = now,
            }));
        }

        var run = await cli.RunAsync("monitor", "--name", "cats", "--since", "1d", "--json", temp.Combine("cats.json"), "--html", temp.Combine("cats.html"));

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("40 predictions of model cats since", run.Out, StringComparison.Ordinal);
        Assert.Contains("Canary release, 10 % of traffic to c2, side by side with the current version:", run.Out, StringComparison.Ordinal);
        Assert.Contains("  current c1: 36 predictions, median confidence 0.90, unknown 16.7 %, out of distribution 0 %, rejected 0 %, review labels agree 2 of 2 (100 %)", run.Out, StringComparison.Ordinal);
        Assert.Contains("  canary  c2: 4 predictions, median confidence 0.70, unknown 25 %, out of distribution 25 %, rejected 0 %, review labels agree 1 of 2 (50 %)", run.Out, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(temp.Combine("cats.json")));
        Assert.Equal("cats", json.RootElement.GetProperty("model").GetString());
        Assert.Equal(10, json.RootElement.GetProperty("canary").GetProperty("traffic").GetInt32());
        Assert.Equal("c2", json.RootElement.GetProperty("canary").GetProperty("canary").GetProperty("version").GetString());
        var html = await File.ReadAllTextAsync(temp.Combine("cats.html"));
        Assert.Contains("<h1>Drift report of model cats</h1>", html, StringComparison.Ordinal);
        Assert.Contains("<tr><td>c1</td><td>current</td><td>36</td>", html, StringComparison.Ordinal);
        Assert.Contains("<tr><td>c2</td><td>canary (10 %)</td><td>4</td>", html, StringComparison.Ordinal);
        Assert.Contains("<td>50.0% of 2</td>", html, StringComparison.Ordinal);

        // The default model's report leaves the named model's predictions out; a name that is not published is refused.
        var plain = await cli.RunAsync("monitor", "--since", "1d");
        Assert.Contains("20 predictions since", plain.Out, StringComparison.Ordinal);
        var unknownModel = await cli.RunAsync("monitor", "--name", "dogs");
        Assert.Equal(ExitCodes.Usage, unknownModel.ExitCode);
        Assert.Contains("No model named \"dogs\" is published", unknownModel.Err, StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();
}
