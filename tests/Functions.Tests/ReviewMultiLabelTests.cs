using System.Text;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The review API for a multi-label model (in process, over Azurite): its upload is listed with the labels its prediction
/// gave, a reviewer ticks several labels (or none: a legal negative), the record keeps the set, and an approval writes the
/// image beside <c>labels.csv</c> (<c>image,labels</c>, the layout <c>train --multilabel</c> reads). A multi-class model's
/// upload beside it takes one label as before, and its queue item and record carry no multi-label member.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewMultiLabelTests(ServingModelFixture model)
{
    [Fact]
    public async Task MultiLabelUpload_IsLabelledWithASetOrNone_AndItsApprovalWritesLabelsCsv_WhileAMultiClassUploadTakesOneLabel()
    {
        var models = await TestStorage.CreateContainerAsync("models-review-multilabel");
        await new ModelStore(models).PublishAsync(model.MultiLabelFolder, version: "m1");
        await new ModelStore(models, "colours").PublishAsync(model.Folder, version: "c1");
        // A margin bound of 1 lists every prediction: the uploads below are listed whatever the models say.
        await using var scene = await ReviewScene.StartAsync(model, new Dictionary<string, string?> { ["Classifier:ReviewMarginBelow"] = "1" }, models);
        var handler = scene.Host.Get<UploadedImageHandler>();
        var uploads = new Dictionary<string, byte[]>
        {
            ["magenta.png"] = ServingModelFixture.Magenta(),
            ["green.png"] = ServingModelFixture.Image("green", seed: 43),
            ["colours/c.png"] = ServingModelFixture.Image("red", seed: 44),
        };
        foreach (var (name, bytes) in uploads)
        {
            await scene.Host.UploadAsync(name, bytes);
            Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(scene.Host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        }

        // Listed with the labels the sigmoids gave at their own thresholds (magenta: red over its 0.5, blue under its 0.99).
        var list = ReviewScene.Value<ReviewList>(await TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Reviewer), scene.Function.List));
        var magenta = list.Items.Single(c => c.Image == "magenta.png");
        Assert.Equal(["red"], magenta.SuggestedLabels);
        Assert.Equal(ServingModelFixture.Labels, list.Labels);
        var colours = list.Items.Single(c => c.Image == "colours/c.png");
        Assert.Null(colours.SuggestedLabels);

        // One label for a multi-label upload, or a set for a multi-class one, is refused with nothing written; so is a label with ';'.
        Assert.Equal("LabelsExpected", ReviewScene.ProblemCode(await scene.LabelAsync(ReviewScene.Reviewer, "magenta.png", magenta.ImageVersion, "red"), 400));
        Assert.Equal("LabelExpected", ReviewScene.ProblemCode(await LabelsAsync(scene, "colours/c.png", colours.ImageVersion, ["red"]), 400));
        Assert.Equal("InvalidLabel", ReviewScene.ProblemCode(await LabelsAsync(scene, "magenta.png", magenta.ImageVersion, ["red;blue"]), 400));
        Assert.Equal(3, await scene.Queue.ListAsync().CountAsync());
        Assert.Empty(await scene.ReviewNamesAsync(ReviewLabels.StagedPrefix));

        // Two labels ticked for magenta; none for the green one (a negative, not a discard).
        var both = ReviewScene.Value<LabelResult>(await LabelsAsync(scene, "magenta.png", magenta.ImageVersion, ["red", "blue"]));
        Assert.Equal((nameof(LabelOutcome.Staged), false), (both.Outcome, both.NewClass));
        Assert.Equal(["blue", "red"], both.Labels);
        var greenVersion = list.Items.Single(c => c.Image == "green.png").ImageVersion;
        var none = ReviewScene.Value<LabelResult>(await LabelsAsync(scene, "green.png", greenVersion, []));
        Assert.Equal(nameof(LabelOutcome.Staged), none.Outcome);
        Assert.Equal([], none.Labels);
        var single = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Reviewer, "colours/c.png", colours.ImageVersion, "green"));
        Assert.Equal(nameof(LabelOutcome.Staged), single.Outcome);

        // What waits for the Approver: the sets as ticked; the multi-class record's JSON has no multi-label member.
        var staged = await scene.Labels.ListStagedAsync().ToDictionaryAsync(s => s.Record.Image, s => s.Record);
        Assert.Equal(["blue", "red"], staged["magenta.png"].Labels);
        Assert.Equal(["red"], staged["magenta.png"].SuggestedLabels);
        Assert.Null(staged["magenta.png"].Label);
        Assert.Equal([], staged["green.png"].Labels);
        var multiClassJson = Encoding.UTF8.GetString(staged["colours/c.png"].ToUtf8Bytes());
        Assert.Equal("green", staged["colours/c.png"].Label);
        Assert.DoesNotContain("\"labels\"", multiClassJson, StringComparison.Ordinal);
        Assert.DoesNotContain("suggestedLabels", multiClassJson, StringComparison.Ordinal);
        var stagedList = ReviewScene.Value<StagedList>(await TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Approver), scene.Function.ListStaged));
        Assert.Equal("blue;red", stagedList.Items.Single(c => c.Image == "magenta.png").Label);

        // Approved: each image beside labels.csv in the default model's training container, its labels in one cell ("" for none).
        foreach (var image in new[] { "magenta.png", "green.png", "colours/c.png" })
        {
            var decided = ReviewScene.Value<DecisionResult>(await scene.DecideAsync(ReviewScene.Approver, staged[image].Id, approve: true));
            Assert.Equal(nameof(ApprovalOutcome.Added), decided.Outcome);
        }
        Assert.Equal(["green.png", TrainingImages.MultiLabelCsv, "magenta.png"], await scene.TrainingNamesAsync());
        var csv = (await scene.Training.GetBlobClient(TrainingImages.MultiLabelCsv).DownloadContentAsync()).Value.Content.ToString();
        Assert.Equal("image,labels\nmagenta.png,blue;red\ngreen.png,\n", csv);
        Assert.Equal(uploads["magenta.png"], (await scene.Training.GetBlobClient("magenta.png").DownloadContentAsync()).Value.Content.ToArray());
        Assert.Equal(["colours/green/colours_c.png"], await scene.NamedTraining.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).Select(b => b.Name).ToListAsync());

        // The records keep the sets; training reads the file as a multi-label manifest (a negative is a row with no label).
        var records = await scene.Labels.ListRecordsAsync().ToDictionaryAsync(r => r.Image);
        Assert.Equal(LabelDecisions.Approved, records["magenta.png"].Decision);
        Assert.Equal(["blue", "red"], records["magenta.png"].Labels);
        var folder = Directory.CreateTempSubdirectory("review-multilabel-");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, TrainingImages.MultiLabelCsv), csv);
            foreach (var image in new[] { "magenta.png", "green.png" })
            {
                await File.WriteAllBytesAsync(Path.Combine(folder.FullName, image), uploads[image]);
            }
            var read = await DataManifest.ReadAsync(Path.Combine(folder.FullName, TrainingImages.MultiLabelCsv), new ManifestSources(), new DatasetOptions { MultiLabel = true });
            Assert.Equal([["blue", "red"], []], read.Images.Select(i => i.Image.Labels!.ToArray()));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    /// <summary>
    /// With the default review margin (0.1) a multi-label upload is listed only when some label is near its threshold: yellow
    /// (red and green both sure, its top two close) and black (no label at all, each far below) are sure
    /// answers and stay out, while magenta (blue 0.98 under its 0.99) is listed. The multi-class rule would have listed all
    /// three (low margin, unknown). A multi-class prediction has no <c>thresholdMargin</c>.
    /// </summary>
    [Fact]
    public async Task MultiLabelUpload_IsListedOnlyWhenALabelIsNearItsThreshold_NotForTwoSureLabelsNorForNone()
    {
        var models = await TestStorage.CreateContainerAsync("models-review-near");
        await new ModelStore(models).PublishAsync(model.MultiLabelFolder, version: "m1");
        await new ModelStore(models, "colours").PublishAsync(model.Folder, version: "c1");
        await using var scene = await ReviewScene.StartAsync(model, models: models);
        var handler = scene.Host.Get<UploadedImageHandler>();
        var thresholds = ServingModelFixture.Labels.Zip(ServingModelFixture.MultiLabelThresholds).ToDictionary(p => p.First, p => p.Second);
        var uploads = new Dictionary<string, byte[]>
        {
            ["yellow.png"] = ServingModelFixture.Solid(255, 240, 0),
            ["black.png"] = ServingModelFixture.Solid(0, 0, 0),
            ["magenta.png"] = ServingModelFixture.Magenta(),
            ["colours/yellow.png"] = ServingModelFixture.Solid(255, 240, 0),
        };
        var documents = new Dictionary<string, PredictionDocument>();
        foreach (var (name, bytes) in uploads)
        {
            await scene.Host.UploadAsync(name, bytes);
            Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(scene.Host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
            var json = (await scene.Host.Predictions.GetBlobClient(name + PredictionDocument.BlobSuffix).DownloadContentAsync()).Value.Content;
            documents[name] = PredictionDocument.Parse(json.ToArray());
        }

        // The closest call over every label, as the stored documents say: |probability - threshold|, smallest.
        foreach (var name in new[] { "yellow.png", "black.png", "magenta.png" })
        {
            var document = documents[name];
            Assert.Equal(3, document.Top!.Count);
            Assert.Equal(document.Top.Min(t => Math.Abs(t.Probability - thresholds[t.Label])), document.ThresholdMargin!.Value, 3);
        }
        Assert.Equal(["green", "red"], documents["yellow.png"].Labels!.Select(l => l.Label).Order(StringComparer.Ordinal));
        Assert.True(documents["yellow.png"].Top![0].Probability - documents["yellow.png"].Top![1].Probability < 0.01);
        Assert.Empty(documents["black.png"].Labels!);
        Assert.True(documents["black.png"].IsUnknown);
        Assert.True(documents["magenta.png"].ThresholdMargin < 0.02, $"magenta's closest call {documents["magenta.png"].ThresholdMargin}");
        Assert.True(documents["yellow.png"].ThresholdMargin > 0.3 && documents["black.png"].ThresholdMargin > 0.3);
        Assert.Null(documents["colours/yellow.png"].ThresholdMargin);

        var queued = await scene.Queue.ListAsync().Select(q => q.Item).ToListAsync();
        var magenta = Assert.Single(queued, q => q.Model is null);
        Assert.Equal("magenta.png", magenta.Image);
        Assert.Equal([ReviewReasons.NearThreshold], magenta.Reasons);
        Assert.Equal(documents["magenta.png"].ThresholdMargin!.Value, magenta.Margin, 6);
        // The multi-class model's yellow (red and green close) is listed by its own rule, unchanged.
        Assert.Equal([ReviewReasons.LowMargin], Assert.Single(queued, q => q.Model == "colours").Reasons);
    }

    private static Task<Microsoft.AspNetCore.Mvc.IActionResult> LabelsAsync(ReviewScene scene, string image, string version, string[] labels) =>
        TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Reviewer, new { image, imageVersion = version, labels }), scene.Function.Label);
}
