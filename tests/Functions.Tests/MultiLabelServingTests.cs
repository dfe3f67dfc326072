using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.CustomVision;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>What a multi-label model's callers read besides <c>/api/classify</c> (in process, over Azurite): its kind and thresholds, and the Custom Vision answer.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class MultiLabelServingTests(ServingModelFixture model)
{
    [Fact]
    public async Task MultiLabelModel_ApiModelAndModelsSayItsKindAndThresholds_CustomVisionAnswersEveryTagsOwnProbability()
    {
        // The sigmoid ColourModel as the default model and as the named model a Custom Vision project maps to; a multi-class one beside them.
        var models = await TestStorage.CreateContainerAsync("models-multilabel");
        await new ModelStore(models).PublishAsync(model.MultiLabelFolder, version: "m1");
        await new ModelStore(models, "tags").PublishAsync(model.MultiLabelFolder, version: "t1");
        await new ModelStore(models, "colours").PublishAsync(model.Folder, version: "c1");
        var settings = CustomVisionTests.Settings();
        settings["Classifier:CustomVisionProjects"] = $"{CustomVisionTests.Project}=tags";
        await using var host = await TestHost.StartAsync(settings, models);
        var thresholds = ServingModelFixture.Labels.Zip(ServingModelFixture.MultiLabelThresholds).ToDictionary(p => p.First, p => p.Second);

        var summary = (ModelSummary)((OkObjectResult)await host.Function<GetModel>().Run(new DefaultHttpContext().Request, CancellationToken.None)).Value!;
        Assert.Equal("multiLabel", summary.Kind);
        Assert.Equal(thresholds, summary.LabelThresholds);

        var list = (ModelList)((OkObjectResult)await host.Function<ListModels>().Run(new DefaultHttpContext().Request, CancellationToken.None)).Value!;
        var byName = list.Models.ToDictionary(m => m.Name);
        Assert.Equal(["default", "colours", "tags"], list.Models.Select(m => m.Name));
        Assert.Equal(("multiLabel", "multiLabel", "multiClass"), (byName["default"].Kind, byName["tags"].Kind, byName["colours"].Kind));
        Assert.Equal(thresholds, byName["tags"].LabelThresholds);
        Assert.Null(byName["colours"].LabelThresholds);

        // Custom Vision's multilabel projects answer each tag's own probability, most probable first: here the sigmoids, which
        // do not sum to 1 (magenta: red and blue both about 0.96-0.98), whatever the thresholds.
        var (status, body) = await CustomVisionTests.ClassifyAsync(host, CustomVisionTests.Key, CustomVisionTests.Project.ToString(), "Iteration1", ServingModelFixture.Magenta());
        Assert.Equal(200, status);
        var predictions = ((CustomVisionImagePrediction)body!).Predictions;
        Assert.Equal(["blue", "red", "green"], predictions.Select(p => p.TagName));
        Assert.All(predictions.Take(2), p => Assert.InRange(p.Probability, 0.9, 1));
        Assert.True(predictions.Sum(p => p.Probability) > 1.5, string.Join(", ", predictions.Select(p => $"{p.TagName} {p.Probability}")));
        Assert.Equal(CustomVisionIds.Tag("tags", "blue"), predictions[0].TagId);
    }
}
