using System.Text.Json.Nodes;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>What the Functions host sees (functions.metadata) and what the app ships (no TorchSharp, no libtorch), from the real build and publish output.</summary>
public sealed class AppShapeTests
{
    private static string BuildOutput => Path.Combine(TestAssets.RepositoryRoot, "src", "Functions", "bin", PublishedApp.Configuration, "net10.0");

    [Fact]
    public void FunctionsMetadata_DeclaresTheTriggersPathsConnectionsAndAuthLevels()
    {
        var functions = JsonNode.Parse(File.ReadAllText(Path.Combine(BuildOutput, "functions.metadata")))!.AsArray()
            .ToDictionary(f => (string)f!["name"]!, f => f!["bindings"]!.AsArray()[0]!);

        Assert.Equal(["ClassifyImage", "ClassifyShard", "ClassifyUploadedImage", "ClassifyUploadedImageEventGrid", "ClassifyWithModel", "CustomVisionClassify", "DecideLabel", "GetModel", "Health", "LabelReview", "ListModels", "ListReview", "ListStagedLabels", "ReviewThumbnail", "SweepUnclassifiedImages", "WebPage"],
            functions.Keys.Order(StringComparer.Ordinal));
        foreach (var name in new[] { "ClassifyUploadedImage", "ClassifyUploadedImageEventGrid" })
        {
            var trigger = functions[name];
            Assert.Equal("blobTrigger", (string?)trigger["type"]);
            Assert.Equal("%Classifier:ImagesContainer%/{name}", (string?)trigger["path"]);
            Assert.Equal("ClassifierStorage", (string?)trigger["connection"]);
        }
        Assert.Null(functions["ClassifyUploadedImage"]["source"]);
        Assert.Equal("EventGrid", (string?)functions["ClassifyUploadedImageEventGrid"]["source"]);

        AssertHttp(functions["ClassifyImage"], "Function", "post", "api/classify");
        AssertHttp(functions["GetModel"], "Function", "get", "api/model");
        AssertHttp(functions["ClassifyWithModel"], "Function", "post", "api/classify/{model}");
        AssertHttp(functions["ListModels"], "Function", "get", "api/models");
        // Custom Vision's clients call {Endpoint}/customvision/... and drop any path of the endpoint, so its routes are at
        // the root: host.json's routePrefix is empty and every other route carries its api/ itself (the URLs are as before).
        AssertHttp(functions["CustomVisionClassify"], "Anonymous", "post", "customvision/{apiVersion}/prediction/{projectId}/classify/iterations/{publishedName}/{source}/{nostore?}");
        AssertHttp(functions["Health"], "Anonymous", "get", "api/health");
        // The page and its API are protected like the classification API (the review API also needs a signed-in role: ReviewAccessTests).
        AssertHttp(functions["WebPage"], "Function", "get", "api/ui");
        AssertHttp(functions["ListReview"], "Function", "get", "api/review");
        AssertHttp(functions["ReviewThumbnail"], "Function", "get", "api/review/thumbnail");
        AssertHttp(functions["LabelReview"], "Function", "post", "api/review/label");
        AssertHttp(functions["ListStagedLabels"], "Function", "get", "api/review/staged");
        AssertHttp(functions["DecideLabel"], "Function", "post", "api/review/decide");

        var shards = functions["ClassifyShard"];
        Assert.Equal("queueTrigger", (string?)shards["type"]);
        Assert.Equal("%Classifier:ShardQueue%", (string?)shards["queueName"]);
        Assert.Equal("ClassifierStorage", (string?)shards["connection"]);

        var timer = functions["SweepUnclassifiedImages"];
        Assert.Equal("timerTrigger", (string?)timer["type"]);
        Assert.Equal("%Classifier:SweepSchedule%", (string?)timer["schedule"]);
        Assert.False((bool)timer["runOnStartup"]!);
    }

    [Fact]
    public void PublishedApp_HasNoTorchSharpAndNoLibTorch()
    {
        // The already-built app published as a deployment would (no rebuild): the run's one publish.
        var output = PublishedApp.Directory;
        var files = Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
        Assert.Contains("ServerlessClassifier.Functions.dll", files);
        Assert.Contains("ServerlessClassifier.ModelCore.Serving.dll", files);
        Assert.Contains("Microsoft.ML.OnnxRuntime.dll", files);
        var torch = files.Where(f => f!.Contains("torch", StringComparison.OrdinalIgnoreCase) || f.StartsWith("libc10", StringComparison.OrdinalIgnoreCase)
            || f.StartsWith("c10", StringComparison.OrdinalIgnoreCase) || f.Contains("ModelCore.Training", StringComparison.Ordinal)).ToList();
        Assert.Empty(torch);
        var deps = File.ReadAllText(Path.Combine(output, "ServerlessClassifier.Functions.deps.json"));
        Assert.DoesNotContain("TorchSharp", deps, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void LocalSettingsExample_RunsThePollingTriggerAgainstAzurite()
    {
        var values = JsonNode.Parse(File.ReadAllText(Path.Combine(TestAssets.RepositoryRoot, "src", "Functions", "local.settings.example.json")))!["Values"]!;
        Assert.Equal("dotnet-isolated", (string?)values["FUNCTIONS_WORKER_RUNTIME"]);
        Assert.Equal("UseDevelopmentStorage=true", (string?)values["AzureWebJobsStorage"]);
        Assert.Equal("UseDevelopmentStorage=true", (string?)values["ClassifierStorage"]);
        Assert.Equal("true", (string?)values["AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled"]);
        Assert.Equal("0 */5 * * * *", (string?)values["Classifier__SweepSchedule"]);
        // A local host has no App Service authentication: the documented development identity reviews there.
        Assert.Equal("Development", (string?)values["Classifier__ReviewIdentity"]);
    }

    [Theory]
    [InlineData("Classifier:MicroBatching:MaxBatchSize", "0")]
    [InlineData("Classifier:SweepMaxImagesPerRun", "0")]
    [InlineData("Classifier:ImagesContainer", "Not_A_Container")]
    [InlineData("Classifier:MaxBytes", "0")]
    public void InvalidSettings_FailValidation(string key, string value)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [key] = value }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddLogging().AddClassifierServices().BuildServiceProvider();
        var error = Assert.Throws<OptionsValidationException>(() =>
        {
            _ = services.GetRequiredService<IOptions<ClassifierOptions>>().Value;
            _ = services.GetRequiredService<IOptions<MicroBatchingOptions>>().Value;
        });
        Assert.Contains(key.Split(':')[^1], error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ImagesContainer", "Not_A_Container", "container name 'Not_A_Container' has 'N': only lower-case letters, digits and hyphens are allowed.")]
    [InlineData("ReviewContainer", "-review", "container name '-review' starts with a hyphen; it must start and end with a letter or digit.")]
    [InlineData("ShardQueue", "classify--shards", "container name 'classify--shards' has two hyphens in a row.")]
    [InlineData("JobsContainer", "jb", "container name 'jb' has 2 characters; it needs 3 to 63.")]
    public void InvalidContainerSettings_SayWhatIsWrong(string setting, string value, string problem)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { [$"Classifier:{setting}"] = value }).Build();
        var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddLogging().AddClassifierServices().BuildServiceProvider();

        var error = Assert.Throws<OptionsValidationException>(() => services.GetRequiredService<IOptions<ClassifierOptions>>().Value);

        var failure = Assert.Single(error.Failures);
        Assert.Contains(setting, failure, StringComparison.Ordinal);
        Assert.Contains(problem, failure, StringComparison.Ordinal);
    }

    [Fact]
    public void Defaults_AreTheDocumentedOnes()
    {
        var options = new ClassifierOptions();
        Assert.Equal(("images", "predictions", "models"), (options.ImagesContainer, options.PredictionsContainer, options.ModelsContainer));
        Assert.Equal(TimeSpan.FromSeconds(30), options.ModelRefreshInterval);
        Assert.Equal(100, options.SweepMaxImagesPerRun);
        Assert.Equal((true, 8, 0), (new MicroBatchingOptions().Enabled, new MicroBatchingOptions().MaxBatchSize, new MicroBatchingOptions().MaxWaitMilliseconds));
    }

    private static void AssertHttp(JsonNode trigger, string authLevel, string method, string route)
    {
        Assert.Equal("httpTrigger", (string?)trigger["type"]);
        Assert.Equal(authLevel, (string?)trigger["authLevel"]);
        Assert.Equal([method], trigger["methods"]!.AsArray().Select(m => (string?)m));
        Assert.Equal(route, (string?)trigger["route"]);
    }
}
