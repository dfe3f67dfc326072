using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using ServerlessClassifier.Functions.CustomVision;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>Several models and the Custom Vision prediction API, on the same host as the other end-to-end tests.</summary>
public sealed partial class EndToEndTests
{
    /// <summary>
    /// One test, so that its steps see the named model in a known state: Microsoft's Custom Vision npm client classifies
    /// against the app (changing only its endpoint and key), then the named model is served from its route and its
    /// uploads, and is hot-swapped while the default model stays as it was.
    /// </summary>
    [HostFact]
    public async Task SecondModel_ServedByRouteUploadsAndTheCustomVisionClient_AndSwappedAlone()
    {
        await host.EnsureStartedAsync(model);
        var second = FunctionsHostFixture.SecondModel;
        var red = ServingModelFixture.Image("red", seed: 950);

        // Microsoft's client, as its quickstart uses it; s1 has the reversed labels, so red is "blue".
        await host.Images.GetBlobClient("cv/by-url.png").UploadAsync(BinaryData.FromBytes(red), overwrite: true);
        var imageFile = Path.Combine(Path.GetTempPath(), $"cv-{Guid.NewGuid():N}.png");
        await File.WriteAllBytesAsync(imageFile, red);
        Dictionary<string, JsonNode> calls;
        try
        {
            calls = await RunCustomVisionClientAsync(FunctionsHostFixture.SecondProject, "Iteration7", imageFile, host.Images.GetBlobClient("cv/by-url.png").Uri);
        }
        finally
        {
            File.Delete(imageFile);
        }
        foreach (var name in new[] { "classifyImage", "classifyImageWithNoStore", "classifyImageUrl" })
        {
            var call = calls[name];
            Assert.True((bool)call["ok"]!, call.ToJsonString());
            var body = call["body"]!;
            Assert.Equal(FunctionsHostFixture.SecondProject.ToString(), (string?)body["project"]);
            Assert.Equal(CustomVisionIds.Iteration(second, "s1").ToString(), (string?)body["iteration"]);
            var predictions = body["predictions"]!.AsArray();
            Assert.Equal(3, predictions.Count);
            Assert.Equal("blue", (string?)predictions[0]!["tagName"]);
            Assert.Equal(CustomVisionIds.Tag(second, "blue").ToString(), (string?)predictions[0]!["tagId"]);
            Assert.True((double)predictions[0]!["probability"]! > 0.5);
        }
        Assert.Equal((400, "BadRequestImageUrl"), Failure(calls["classifyImageUrlWithNoStore"]));
        Assert.Equal((401, "Unauthorized"), Failure(calls["wrongKey"]));
        Assert.Equal((404, "NotFoundProject"), Failure(calls["unknownProject"]));
        Assert.DoesNotContain("127.0.0.1", string.Join('\n', calls.Values.Select(c => c.ToJsonString())), StringComparison.Ordinal);

        // v3.0 with an octet-stream body, and a published name that is a version id (the default model's v2, not live).
        using (var v30 = new HttpRequestMessage(HttpMethod.Post, host.Url($"customvision/v3.0/prediction/{FunctionsHostFixture.DefaultProject}/classify/iterations/v2/image/nostore")))
        {
            v30.Content = new ByteArrayContent(red);
            v30.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/octet-stream");
            v30.Headers.Add("Prediction-Key", FunctionsHostFixture.FunctionKey);
            using var response = await host.Http.SendAsync(v30);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            Assert.Equal(CustomVisionIds.Iteration("default", "v2").ToString(), (string?)body["iteration"]);
            Assert.Equal("blue", (string?)body["predictions"]![0]!["tagName"]);
        }

        // The named model's own route, and its uploads (the first path segment names it); others go to the default.
        var defaultVersion = await DefaultVersionAsync();
        Assert.Equal(("blue", "s1"), await ClassifyWithAsync(second, red));
        // explain=true on the named route: the named model's answer with the activation map of its top label.
        using (var explain = ClassifyRequest(second, red))
        {
            explain.RequestUri = host.Url($"api/classify/{second}?explain=true&top=2");
            using var response = await host.Http.SendAsync(explain);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.True(response.StatusCode == HttpStatusCode.OK, body.ToJsonString());
            Assert.Equal(("blue", "s1", second, 2), ((string?)body["label"], (string?)body["modelVersion"], (string?)body["model"], body["top"]!.AsArray().Count));
            Assert.Equal("blue", (string?)body["explanation"]!["label"]);
            Assert.True(Convert.FromBase64String((string)body["explanation"]!["overlayJpeg"]!).AsSpan().StartsWith((byte[])[0xFF, 0xD8]), "the overlay is a JPEG");
        }
        await host.Images.GetBlobClient($"{second}/upload.png").UploadAsync(BinaryData.FromBytes(red), overwrite: true);
        var routed = await WaitForPredictionAsync(host.Predictions, $"{second}/upload.png");
        Assert.Equal(("blue", "s1", second), (routed.Label, routed.ModelVersion, routed.Model));
        using (var list = await host.Http.SendAsync(host.Get("api/models")))
        {
            var models = JsonNode.Parse(await list.Content.ReadAsStringAsync())!["models"]!.AsArray();
            Assert.Equal(["default", second], models.Select(m => (string?)m!["name"]));
            Assert.Equal("s1", (string?)models[1]!["loadedVersion"]);
        }
        using (var unknown = await host.Http.SendAsync(ClassifyRequest("no-such-model", red)))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }

        // A new version of the named model goes live alone: the default model's version does not move.
        await new ModelStore(host.Store.Container, second).PublishAsync(model.Folder, version: "s2");
        await WaitForAsync(async () => await ClassifyWithAsync(second, red) == ("red", "s2"), "the second model's swap to s2");
        Assert.Equal(defaultVersion, await DefaultVersionAsync());

        // A canary of s1 at 30 %: the names its hash puts in the share get s1, the others s2, each prediction saying which.
        var secondStore = new ModelStore(host.Store.Container, second);
        await secondStore.PromoteAsync("s1", 30);
        var release = new CanaryRelease("s1", 30);
        var candidates = Enumerable.Range(0, 50).Select(i => $"{second}/canary-{i}.png").ToList();
        var toCanary = candidates.First(n => CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), release));
        var toLive = candidates.First(n => !CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(n), release));
        await Task.Delay(TimeSpan.FromSeconds(3)); // the refresh interval (2 s): the instance reads the canary
        foreach (var name in new[] { toCanary, toLive })
        {
            await host.Images.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(red), overwrite: true);
            await Task.Delay(TimeSpan.FromSeconds(1.1));
        }
        Assert.Equal(("blue", "s1"), await LabelAndVersionAsync(toCanary));
        Assert.Equal(("red", "s2"), await LabelAndVersionAsync(toLive));
        await secondStore.RollbackAsync();
        Assert.Null((await secondStore.GetCurrentAsync())!.State.Canary);
    }

    private async Task<(string? Label, string? Version)> LabelAndVersionAsync(string image)
    {
        var prediction = await WaitForPredictionAsync(host.Predictions, image);
        return (prediction.Label, prediction.ModelVersion);
    }

    private async Task<string?> DefaultVersionAsync()
    {
        using var response = await host.Http.SendAsync(host.Get("api/model"));
        return (string?)JsonNode.Parse(await response.Content.ReadAsStringAsync())!["version"];
    }

    private HttpRequestMessage ClassifyRequest(string name, byte[] image)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, host.Url($"api/classify/{name}")) { Content = new ByteArrayContent(image) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        request.Headers.Add("x-functions-key", FunctionsHostFixture.FunctionKey);
        return request;
    }

    private async Task<(string? Label, string? Version)> ClassifyWithAsync(string name, byte[] image)
    {
        using var request = ClassifyRequest(name, image);
        using var response = await host.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        var prediction = JsonNode.Parse(body)!;
        Assert.Equal(name, (string?)prediction["model"]);
        return ((string?)prediction["label"], (string?)prediction["modelVersion"]);
    }

    private static (int Status, string? Code) Failure(JsonNode call)
    {
        Assert.False((bool)call["ok"]!, call.ToJsonString());
        return ((int)call["status"]!, (string?)call["body"]?["code"]);
    }

    /// <summary>Runs tests/Functions.Tests/EndToEnd/customvision-client.js with node against the host: one JSON line per call.</summary>
    private async Task<Dictionary<string, JsonNode>> RunCustomVisionClientAsync(Guid project, string iteration, string imageFile, Uri imageUrl)
    {
        var script = Path.Combine(TestAssets.RepositoryRoot, "tests", "Functions.Tests", "EndToEnd", "customvision-client.js");
        var start = new ProcessStartInfo("node", [script]) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = TestAssets.RepositoryRoot };
        // The app's root, as a Custom Vision endpoint is (the client drops any path of the endpoint).
        start.Environment["CV_ENDPOINT"] = host.Url("").ToString().TrimEnd('/');
        start.Environment["CV_KEY"] = FunctionsHostFixture.FunctionKey;
        start.Environment["CV_PROJECT"] = project.ToString();
        start.Environment["CV_ITERATION"] = iteration;
        start.Environment["CV_IMAGE"] = imageFile;
        start.Environment["CV_IMAGE_URL"] = imageUrl.ToString();
        using var node = Process.Start(start)!;
        var stdout = node.StandardOutput.ReadToEndAsync();
        var stderr = node.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await node.WaitForExitAsync(timeout.Token);
        var lines = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        output.WriteLine(await stdout);
        Assert.True(node.ExitCode == 0, $"node exited {node.ExitCode}: {await stderr}");
        return lines.Select(l => JsonNode.Parse(l)!).ToDictionary(n => (string)n["call"]!, n => n);
    }
}
