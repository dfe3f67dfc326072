using System.Net.Http.Headers;
using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.CustomVision;
using ServerlessClassifier.Functions.Functions;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>The Custom Vision routes in process (the app's registrations over Azurite); Microsoft's client drives them under the real host in EndToEndTests.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class CustomVisionTests(ServingModelFixture model)
{
    internal const string Key = "test-prediction-key";
    internal static readonly Guid Project = new("11111111-2222-4333-8444-555555555555");

    [Fact]
    public void NameBasedIds_AreRfcVersion5_AndStablePerModelAndLabel()
    {
        // RFC 9562's namespace for DNS names and Python's uuid5(NAMESPACE_DNS, "python.org").
        Assert.Equal(new Guid("886313e1-3b8a-5372-9b90-0c9aee199e5d"), CustomVisionIds.NameBased(new Guid("6ba7b810-9dad-11d1-80b4-00c04fd430c8"), "python.org"));
        Assert.Equal(CustomVisionIds.Tag("cats", "tabby"), CustomVisionIds.Tag("cats", "tabby"));
        Assert.NotEqual(CustomVisionIds.Tag("cats", "tabby"), CustomVisionIds.Tag("dogs", "tabby"));
    }

    [Theory]
    [InlineData("{images}/a/b.png", "a/b.png")]
    [InlineData("{images}/sp%20ace.png?sv=2020&sig=x", "sp ace.png")]
    [InlineData("http://example.com/images/a.png", null)]
    [InlineData("{images-on-another-host}/a.png", null)]
    [InlineData("{account}/models/current.json", null)]
    [InlineData("{images}/../models/current.json", null)]
    [InlineData("{images}/a/%2E%2E/b.png", "b.png")]
    [InlineData("{images}/%2E%2E/models/current.json", null)]
    [InlineData("{images}/..%2Fmodels%2Fcurrent.json", null)]
    [InlineData("file:///etc/passwd", null)]
    [InlineData("not a url", null)]
    public async Task UrlVariant_ReadsOnlyBlobsOfTheImagesContainer(string url, string? expected)
    {
        await using var host = await TestHost.StartAsync(Settings(), await model.SharedModelsAsync());
        var images = host.Images.Uri.ToString().TrimEnd('/');
        var account = images[..images.LastIndexOf('/')];
        var service = host.Get<CustomVisionService>();

        var elsewhere = images.Replace(host.Images.Uri.Host, "localhost", StringComparison.Ordinal); // the same port and path, another host
        Assert.Equal(expected, service.BlobNameInImages(url
            .Replace("{images-on-another-host}", elsewhere, StringComparison.Ordinal)
            .Replace("{images}", images, StringComparison.Ordinal)
            .Replace("{account}", account, StringComparison.Ordinal)));
    }

    [Theory]
    [InlineData(null, 401, "Unauthorized")]
    [InlineData("wrong", 401, "Unauthorized")]
    [InlineData(Key, 200, null)]
    public async Task PredictionKey_IsCheckedByTheApp(string? key, int status, string? code)
    {
        await using var host = await TestHost.StartAsync(Settings(), await model.SharedModelsAsync());
        var (answerStatus, body) = await ClassifyAsync(host, key, Project.ToString(), "v1");
        Assert.Equal(status, answerStatus);
        if (code is not null)
        {
            Assert.Equal(code, ((CustomVisionError)body!).Code);
        }
        else
        {
            var prediction = (CustomVisionImagePrediction)body!;
            Assert.Equal("red", prediction.Predictions[0].TagName);
            Assert.Equal(CustomVisionIds.Tag("default", "red"), prediction.Predictions[0].TagId);
            Assert.Equal(Project, prediction.Project);
            Assert.Equal(CustomVisionIds.Iteration("default", "v1"), prediction.Iteration);
        }
    }

    [Fact]
    public async Task ModelTrainedFromACustomVisionExport_AnswersWithTheProjectsTagIds_OthersDerived()
    {
        // The model's manifest as training from an export writes it (customVisionTagIds, from <manifest>.tags.json), for red only.
        var folder = Directory.CreateTempSubdirectory("cv-tags-").FullName;
        try
        {
            foreach (var file in Directory.GetFiles(model.Folder))
            {
                File.Copy(file, Path.Combine(folder, Path.GetFileName(file)));
            }
            var manifestPath = Path.Combine(folder, ModelCore.Checkpoints.ModelManifest.FileName);
            var manifest = System.Text.Json.Nodes.JsonNode.Parse(await File.ReadAllTextAsync(manifestPath))!;
            var red = new Guid("b5f7e6a2-a481-49a6-afec-a7cef1af3544");
            manifest["customVisionTagIds"] = new System.Text.Json.Nodes.JsonObject { ["red"] = red.ToString() };
            await File.WriteAllTextAsync(manifestPath, manifest.ToJsonString());
            var models = await ServerlessClassifier.Tests.Common.TestStorage.CreateContainerAsync("models-cvtags");
            await new ModelCore.Storage.ModelStore(models).PublishAsync(folder, version: "v1");
            await using var host = await TestHost.StartAsync(Settings(), models);

            var (status, body) = await ClassifyAsync(host, Key, Project.ToString(), "Iteration1");

            Assert.Equal(200, status);
            var predictions = ((CustomVisionImagePrediction)body!).Predictions;
            Assert.Equal(("red", red), (predictions[0].TagName, predictions[0].TagId));
            Assert.All(predictions.Skip(1), p => Assert.Equal(CustomVisionIds.Tag("default", p.TagName), p.TagId));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task NoKeysConfigured_RefusesEveryCall()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:CustomVisionProjects"] = $"{Project}=default" }, await model.SharedModelsAsync());
        Assert.Equal(401, (await ClassifyAsync(host, "", Project.ToString(), "v1")).Status);
    }

    [Theory]
    [InlineData("00000000-0000-0000-0000-000000000000", "v1", 404, "NotFoundProject")]
    [InlineData("not-a-guid", "v1", 404, "NotFoundProject")]
    public async Task UnknownProject_IsCustomVisionsNotFound(string project, string iteration, int status, string code)
    {
        await using var host = await TestHost.StartAsync(Settings(), await model.SharedModelsAsync());
        var (answerStatus, body) = await ClassifyAsync(host, Key, project, iteration);
        Assert.Equal(status, answerStatus);
        Assert.Equal(code, ((CustomVisionError)body!).Code);
    }

    [Theory]
    [InlineData("nonsense")]
    [InlineData("00000000-0000-0000-0000-000000000000")]
    [InlineData("11111111-2222-4333-8444-555555555555=Bad_Name")]
    public void ProjectsSetting_Invalid_SaysWhichPair(string setting)
    {
        var error = Assert.Throws<FormatException>(() => CustomVisionProjects.Parse(setting));
        Assert.Contains("Classifier:CustomVisionProjects", error.Message, StringComparison.Ordinal);
    }

    internal static Dictionary<string, string?> Settings() => new()
    {
        ["Classifier:CustomVisionProjects"] = $"{Project}=default",
        ["Classifier:CustomVisionPredictionKeys"] = $"old-key, {Key}",
    };

    internal static async Task<(int Status, object? Body)> ClassifyAsync(TestHost host, string? key, string project, string iteration, byte[]? image = null)
    {
        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(image ?? ServingModelFixture.Image("red", seed: 41));
        file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        form.Add(file, "imageData"); // no file name, as Microsoft's client sends it
        var context = TestHost.HttpContext(await form.ReadAsByteArrayAsync(), contentType: form.Headers.ContentType!.ToString());
        if (key is not null)
        {
            context.Request.Headers[CustomVisionService.KeyHeader] = key;
        }
        IActionResult result;
        try
        {
            result = await host.Function<CustomVisionClassify>().Run(context.Request, "v3.1", project, iteration, "image", null, CancellationToken.None);
        }
        catch (Exception e) when (CustomVisionErrors.For(e, context.Response) is { } answer)
        {
            result = answer;
        }
        var objectResult = Assert.IsAssignableFrom<ObjectResult>(result);
        return (objectResult.StatusCode ?? 200, objectResult.Value);
    }
}
