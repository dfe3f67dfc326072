using Azure.Storage.Blobs.Models;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The review queue with several models (docs/architecture.md, "Review labels per model"): a named model's uncertain upload
/// is listed with its model and that model's classes, and its approved label goes to that model's training data in the
/// named models' training container, never into the default model's training container.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewNamedModelTests(ServingModelFixture model)
{
    [Fact]
    public async Task NamedModelsUpload_IsListedWithItsModel_AndItsApprovedLabelGoesToThatModelsTrainingDataOnly()
    {
        var models = await TestStorage.CreateContainerAsync("models-review");
        await new ModelStore(models).PublishAsync(model.Folder, version: "v1");
        await new ModelStore(models, "cats").PublishAsync(model.ReversedFolder, version: "c1");
        // A margin bound of 1 lists every prediction: the uploads below are listed whatever the model says.
        await using var scene = await ReviewScene.StartAsync(model, new Dictionary<string, string?> { ["Classifier:ReviewMarginBelow"] = "1" }, models);
        var handler = scene.Host.Get<UploadedImageHandler>();
        foreach (var name in new[] { "cats/sky.png", "plain.png" })
        {
            await scene.Host.UploadAsync(name, ServingModelFixture.Image("red", seed: 41));
            Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(scene.Host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        }
        var item = (await scene.Queue.GetAsync("cats/sky.png"))!.Item;
        Assert.Equal(("cats", "c1", "blue"), (item.Model, item.ModelVersion, item.SuggestedLabel));
        Assert.Null((await scene.Queue.GetAsync("plain.png"))!.Item.Model);

        // The page's list: the named model's card names it and offers its classes (in its own order).
        var list = ReviewScene.Value<ReviewList>(await TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Reviewer), scene.Function.List));
        var card = list.Items.Single(c => c.Image == "cats/sky.png");
        Assert.Equal("cats", card.Model);
        Assert.Equal(["blue", "green", "red"], card.Labels);
        Assert.Null(list.Items.Single(c => c.Image == "plain.png").Model);

        // Labelled and approved: into training-models/cats/<label>/, nothing into the default model's training container.
        var labelled = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Reviewer, "cats/sky.png", item.ImageVersion, "green"));
        Assert.Equal(nameof(LabelOutcome.Staged), labelled.Outcome);
        Assert.False(labelled.NewClass);
        Assert.Equal("cats", Assert.Single(await scene.Labels.ListStagedAsync().ToListAsync()).Record.Model);
        var approved = ReviewScene.Value<DecisionResult>(await scene.DecideAsync(ReviewScene.Approver, labelled.Id!, approve: true));
        Assert.Equal(nameof(ApprovalOutcome.Added), approved.Outcome);
        Assert.Equal(["cats/green/cats_sky.png"], await scene.NamedTraining.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).Select(b => b.Name).ToListAsync());
        Assert.Empty(await scene.TrainingNamesAsync());
        Assert.Equal("cats", Assert.Single(await scene.Labels.ListRecordsAsync().ToListAsync()).Model);
    }
}
