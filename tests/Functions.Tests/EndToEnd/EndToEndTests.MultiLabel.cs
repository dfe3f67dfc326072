using System.Net;
using System.Text.Json.Nodes;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>A multi-label model served by the real host beside the multi-class default, whose documents keep their shape.</summary>
public sealed partial class EndToEndTests
{
    /// <summary>The members of a multi-class answer to <c>POST /api/classify</c>, as before multi-label existed (the default model's answer names no model).</summary>
    private static readonly string[] MultiClassAnswer = ["status", "modelVersion", "label", "confidence", "isUnknown", "threshold", "top", "timings", "classifiedUtc"];

    [HostFact]
    public async Task MultiLabelModel_ListsEveryLabelAtItsOwnThreshold_OverHttpAndInPredictionBlobs_AndMultiClassAnswersKeepTheirShape()
    {
        await host.EnsureStartedAsync(model);
        const string name = "e2e-multilabel";
        await new ModelStore(host.Store.Container, name).PublishAsync(model.MultiLabelFolder, version: "m1");
        var magenta = ServingModelFixture.Magenta();

        // Red (about 0.96) is over its 0.5; blue (about 0.98) is under its own 0.99, though over red's: each label's threshold is its own.
        var answer = await ClassifyJsonAsync($"api/classify/{name}", magenta);
        var top = answer["top"]!.AsArray().ToDictionary(t => (string)t!["label"]!, t => (double)t!["probability"]!);
        Assert.InRange(top["blue"], 0.9, ServingModelFixture.MultiLabelThresholds[2]);
        Assert.InRange(top["red"], 0.9, 1);
        Assert.True(top["green"] < 0.5, answer.ToJsonString());
        var labels = answer["labels"]!.AsArray();
        var red = Assert.Single(labels)!;
        Assert.Equal(("red", 0.5), ((string?)red["label"], (double)red["threshold"]!));
        Assert.Equal(top["red"], (double)red["probability"]!);
        Assert.Equal("red", (string?)answer["label"]);

        // The caller's threshold replaces every label's: both are then above it, most probable first.
        var lowered = await ClassifyJsonAsync($"api/classify/{name}?threshold=0.5", magenta);
        Assert.Equal(["blue", "red"], lowered["labels"]!.AsArray().Select(l => (string?)l!["label"]));

        // A prediction blob of an upload the named model classifies carries the same labels.
        await host.Images.GetBlobClient($"{name}/magenta.png").UploadAsync(BinaryData.FromBytes(magenta), overwrite: true);
        await WaitForPredictionAsync(host.Predictions, $"{name}/magenta.png");
        var stored = JsonNode.Parse((await host.Predictions.GetBlobClient($"{name}/magenta.png.json").DownloadContentAsync()).Value.Content.ToString())!;
        Assert.Equal(["red"], stored["labels"]!.AsArray().Select(l => (string?)l!["label"]));

        // The multi-class default model's answer has exactly the members it had before multi-label existed.
        var multiClass = await ClassifyJsonAsync("api/classify", ServingModelFixture.Image("red", seed: 990));
        Assert.Equal(MultiClassAnswer, multiClass.AsObject().Select(p => p.Key));
        Assert.Equal(["label", "probability"], multiClass["top"]![0]!.AsObject().Select(p => p.Key));
    }

    private async Task<JsonNode> ClassifyJsonAsync(string path, byte[] image)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, host.Url(path)) { Content = new ByteArrayContent(image) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("image/png");
        request.Headers.Add("x-functions-key", FunctionsHostFixture.FunctionKey);
        using var response = await host.Http.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!;
    }
}
