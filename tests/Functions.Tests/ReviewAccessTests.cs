using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Configuration;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Review;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Labels become training data only through a named privilege, and each leaves a record: the review API reads the
/// caller from App Service authentication's <c>x-ms-client-principal</c> (a function key alone labels nothing), a
/// Reviewer's label is staged and never reaches the training container until an Approver approves it, a new class
/// needs an Approver, and every label and decision records who, when, the image version and the suggestion.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewAccessTests(ServingModelFixture model)
{
    [Fact]
    public async Task Label_WithTheFunctionKeyAlone_Is401_AndNothingIsWritten()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/a.png");

        var answer = await scene.LabelAsync(null, "uploads/a.png", version, "red");

        Assert.Equal("SignInRequired", ReviewScene.ProblemCode(answer, 401));
        await AssertNothingWrittenAsync(scene, "uploads/a.png");
        // Listing the queue (which shows uploads) is refused as well.
        Assert.Equal("SignInRequired", ReviewScene.ProblemCode(await TestHost.AnswerAsync(ReviewScene.Request(null), scene.Function.List), 401));
    }

    [Theory]
    [InlineData("no review role")]
    [InlineData("Approver only")]
    [InlineData("another app's role")]
    public async Task Label_ByASignedInCallerWithoutTheReviewerRole_Is403_AndNothingIsWritten(string who)
    {
        string[] roles = who switch
        {
            "Approver only" => [ReviewRoles.Approver],
            "another app's role" => ["Reviewers", "reviewer"],
            _ => [],
        };
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/a.png");

        var answer = await scene.LabelAsync(ReviewScene.Principal("33333333-3333-3333-3333-333333333333", "Nora", roles), "uploads/a.png", version, "red");

        Assert.Equal("NotAReviewer", ReviewScene.ProblemCode(answer, 403));
        await AssertNothingWrittenAsync(scene, "uploads/a.png");
    }

    [Theory]
    [InlineData("not base64 %%%")]
    [InlineData("bm90IGpzb24=")] // "not json"
    [InlineData("W10=")] // []
    [InlineData("eyJhdXRoX3R5cCI6ImFhZCJ9")] // {"auth_typ":"aad"}: no claims
    [InlineData("eyJjbGFpbXMiOlt7InR5cCI6InJvbGVzIiwidmFsIjoiUmV2aWV3ZXIifV19")] // a Reviewer role but no id
    public async Task Label_WithAnUnreadablePrincipal_Is401WithTheAnswerOfNoSignIn_AndNothingIsWritten(string header)
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/a.png");

        var answer = await scene.LabelAsync(header, "uploads/a.png", version, "red");
        var none = await scene.LabelAsync(null, "uploads/a.png", version, "red");

        Assert.Equal("SignInRequired", ReviewScene.ProblemCode(answer, 401));
        Assert.Equal(Detail(none), Detail(answer)); // generic: it says nothing about what was wrong with the header
        await AssertNothingWrittenAsync(scene, "uploads/a.png");
        Assert.Contains(scene.Logs.Messages, m => m.StartsWith("Warning", StringComparison.Ordinal) && m.Contains("not base64 JSON with an id", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Label_ByAReviewer_IsStagedWithItsRecord_AndTrainingDoesNotSeeIt_UntilAnApproverApprovesIt()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        foreach (var label in ServingModelFixture.Labels)
        {
            for (var i = 0; i < 2; i++)
            {
                await scene.Training.CreateIfNotExistsAsync();
                await scene.Training.UploadBlobAsync($"{label}/seed-{i}.png", BinaryData.FromBytes(ServingModelFixture.Image(label, seed: 700 + i)));
            }
        }
        var version = await scene.QueueAsync("uploads/sky.png", seed: 5);
        var before = DateTimeOffset.UtcNow;

        var labelled = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Reviewer, "uploads/sky.png", version, "blue"));

        Assert.Equal(nameof(LabelOutcome.Staged), labelled.Outcome);
        Assert.False(labelled.NewClass);
        Assert.Null(await scene.Queue.GetAsync("uploads/sky.png"));
        var staged = Assert.Single(await scene.Labels.ListStagedAsync().ToListAsync()).Record;
        Assert.Equal(labelled.Id, staged.Id);
        Assert.Equal(("uploads/sky.png", version, "blue", "red", "v1"), (staged.Image, staged.ImageVersion, staged.Label, staged.SuggestedLabel, staged.ModelVersion));
        Assert.Equal(("11111111-1111-1111-1111-111111111111", "Rita Reviewer", "easyAuth:aad"), (staged.LabelledBy.Id, staged.LabelledBy.Name, staged.LabelledBy.Source));
        Assert.InRange(staged.LabelledUtc, before, DateTimeOffset.UtcNow);
        Assert.Null(staged.Decision);
        Assert.Equal(await scene.Labels.ReadStagedImageAsync(staged), ServingModelFixture.Image("red", 5));
        Assert.Contains(scene.Logs.Messages, m => m.Contains("Review: uploads/sky.png version", StringComparison.Ordinal) && m.Contains("Staged with label blue (suggested red", StringComparison.Ordinal)
            && m.Contains("by Rita Reviewer (11111111-1111-1111-1111-111111111111, easyAuth:aad)", StringComparison.Ordinal));

        // What the next training run reads: the six seeded images, not the staged one.
        var data = await ImageFolderDataset.FromBlobContainerAsync(scene.Training);
        Assert.Equal(6, data.Train.Count + data.Validation.Count);
        Assert.DoesNotContain(data.Train.Concat(data.Validation), i => i.Source.Contains("sky", StringComparison.Ordinal));

        // A Reviewer cannot approve, not even their own label.
        Assert.Equal("NotAnApprover", ReviewScene.ProblemCode(await scene.DecideAsync(ReviewScene.Reviewer, staged.Id, approve: true), 403));
        Assert.Equal("NotAnApprover", ReviewScene.ProblemCode(await TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Reviewer), scene.Function.ListStaged), 403));
        Assert.Equal(6, (await scene.TrainingNamesAsync()).Count);

        var approved = ReviewScene.Value<DecisionResult>(await scene.DecideAsync(ReviewScene.Approver, staged.Id, approve: true));

        Assert.Equal((nameof(ApprovalOutcome.Added), "blue", "blue/uploads_sky.png"), (approved.Outcome, approved.Label, approved.TrainingName));
        Assert.Equal(ServingModelFixture.Image("red", 5), (await scene.Training.GetBlobClient("blue/uploads_sky.png").DownloadContentAsync()).Value.Content.ToArray());
        data = await ImageFolderDataset.FromBlobContainerAsync(scene.Training);
        Assert.Equal(7, data.Train.Count + data.Validation.Count);
        Assert.Contains(data.Train.Concat(data.Validation), i => i.Source.EndsWith("blue/uploads_sky.png", StringComparison.Ordinal) && i.Label == "blue");
        Assert.Empty(await scene.Labels.ListStagedAsync().ToListAsync());
        Assert.Empty(await scene.ReviewNamesAsync(ReviewLabels.StagedPrefix));
        var record = Assert.Single(await scene.Labels.ListRecordsAsync().ToListAsync());
        Assert.Equal(staged with { Decision = LabelDecisions.Approved, DecidedBy = record.DecidedBy, DecidedUtc = record.DecidedUtc }, record);
        Assert.Equal("Abel Approver", record.DecidedBy!.Name);
        Assert.Contains(scene.Logs.Messages, m => m.Contains($"Review: label {staged.Id} (uploads/sky.png as blue) Added by Abel Approver", StringComparison.Ordinal)
            && m.Contains("labelled by Rita Reviewer", StringComparison.Ordinal));

        // Decided once: a second decision finds nothing staged.
        Assert.Equal("NotStaged", ReviewScene.ProblemCode(await scene.DecideAsync(ReviewScene.Approver, staged.Id, approve: false), 409));
    }

    [Fact]
    public async Task Reject_AddsNothing_AndRecordsWhoRejected()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/b.png");
        var id = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Reviewer, "uploads/b.png", version, "green")).Id!;

        var rejected = ReviewScene.Value<DecisionResult>(await scene.DecideAsync(ReviewScene.Approver, id, approve: false));

        Assert.Equal(nameof(ApprovalOutcome.Rejected), rejected.Outcome);
        Assert.Empty(await scene.TrainingNamesAsync());
        var record = Assert.Single(await scene.Labels.ListRecordsAsync().ToListAsync());
        Assert.Equal((LabelDecisions.Rejected, "green", "Rita Reviewer", "Abel Approver"), (record.Decision, record.Label, record.LabelledBy.Name, record.DecidedBy!.Name));
    }

    [Fact]
    public async Task Discard_IsRecorded_AndAddsNothing()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/c.png");

        var discarded = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Reviewer, "uploads/c.png", version, null));

        Assert.Equal(nameof(LabelOutcome.Discarded), discarded.Outcome);
        Assert.Null(await scene.Queue.GetAsync("uploads/c.png"));
        var record = Assert.Single(await scene.Labels.ListRecordsAsync().ToListAsync());
        Assert.Equal((LabelDecisions.Discarded, (string?)null, version, "red", "Rita Reviewer"), (record.Decision, record.Label, record.ImageVersion, record.SuggestedLabel, record.DecidedBy!.Name));
        Assert.Empty(await scene.TrainingNamesAsync());
        Assert.Empty(await scene.Labels.ListStagedAsync().ToListAsync());
    }

    [Fact]
    public async Task NewClass_NeedsAnApprover_EvenToBeStaged()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("uploads/flag.png");

        Assert.Equal("NewClassNeedsApprover", ReviewScene.ProblemCode(await scene.LabelAsync(ReviewScene.Reviewer, "uploads/flag.png", version, "flags"), 403));
        await AssertNothingWrittenAsync(scene, "uploads/flag.png");

        var staged = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Approver, "uploads/flag.png", version, "flags"));

        Assert.Equal((nameof(LabelOutcome.Staged), true), (staged.Outcome, staged.NewClass));
        Assert.True(Assert.Single(await scene.Labels.ListStagedAsync().ToListAsync()).Record.NewClass);
        Assert.Empty(await scene.TrainingNamesAsync()); // staged, not approved
    }

    [Fact]
    public async Task List_ShowsWhoIsAsking_AndOffersTheLiveModelsClasses()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        await scene.QueueAsync("uploads/d.png");

        var list = ReviewScene.Value<ReviewList>(await TestHost.AnswerAsync(ReviewScene.Request(ReviewScene.Approver), scene.Function.List));

        Assert.Equal("Abel Approver", list.You.Name);
        Assert.Equal([ReviewRoles.Reviewer, ReviewRoles.Approver], list.You.Roles);
        Assert.Equal(ServingModelFixture.Labels, list.Labels);
        Assert.Equal("uploads/d.png", Assert.Single(list.Items).Image);
    }

    [Fact]
    public async Task InAzureWithoutAppServiceAuthentication_TheHeaderIsNotTrusted_Every503()
    {
        // In Azure only App Service authentication strips a forged x-ms-client-principal, so without it nobody labels.
        await using var scene = await ReviewScene.StartAsync(model, new Dictionary<string, string?> { ["WEBSITE_SKU"] = "FlexConsumption" });
        var version = await scene.QueueAsync("uploads/e.png");

        Assert.Equal("SignInUnavailable", ReviewScene.ProblemCode(await scene.LabelAsync(ReviewScene.Approver, "uploads/e.png", version, "red"), 503));
        await AssertNothingWrittenAsync(scene, "uploads/e.png");

        await using var on = await ReviewScene.StartAsync(model, new Dictionary<string, string?> { ["WEBSITE_SKU"] = "FlexConsumption", ["WEBSITE_AUTH_ENABLED"] = "True" });
        version = await on.QueueAsync("uploads/e.png");
        Assert.Equal(nameof(LabelOutcome.Staged), ReviewScene.Value<LabelResult>(await on.LabelAsync(ReviewScene.Approver, "uploads/e.png", version, "red")).Outcome);
    }

    [Fact]
    public async Task DevelopmentIdentity_LabelsWithoutAHeader_AsTheDocumentedDevelopmentReviewer()
    {
        await using var scene = await ReviewScene.StartAsync(model, new Dictionary<string, string?> { ["Classifier:ReviewIdentity"] = "Development" });
        var version = await scene.QueueAsync("uploads/f.png");

        var staged = ReviewScene.Value<LabelResult>(await scene.LabelAsync(null, "uploads/f.png", version, "green"));

        Assert.Equal(nameof(LabelOutcome.Staged), staged.Outcome);
        var by = Assert.Single(await scene.Labels.ListStagedAsync().ToListAsync()).Record.LabelledBy;
        Assert.Equal(("development", "Development reviewer", ReviewActor.Sources.Development), (by.Id, by.Name, by.Source));
    }

    [Theory]
    [InlineData("WEBSITE_SKU", "FlexConsumption", true)]
    [InlineData("WEBSITE_INSTANCE_ID", "3b151065ae07", true)]
    [InlineData("WEBSITE_SITE_NAME", "func-classifier", true)]
    [InlineData(null, null, false)]
    public void DevelopmentIdentity_IsRefusedAtStart_InAzure(string? variable, string? value, bool refused)
    {
        var settings = new Dictionary<string, string?>
        {
            ["Classifier:ImagesContainer"] = "images",
            ["Classifier:SweepSchedule"] = "0 */5 * * * *",
            ["Classifier:ShardQueue"] = "classify-shards",
            ["Classifier:ReviewIdentity"] = "Development",
        };
        if (variable is not null)
        {
            settings[variable] = value;
        }
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(settings).Build();

        var error = Record.Exception(() => StartupChecks.Run(configuration));

        if (refused)
        {
            Assert.Contains("Classifier__ReviewIdentity is Development", Assert.IsType<InvalidOperationException>(error).Message, StringComparison.Ordinal);
        }
        else
        {
            Assert.Null(error);
        }
    }

    private static string? Detail(IActionResult result) => Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(result).Value).Detail;

    /// <summary>The upload is still queued, and nothing was staged, recorded or added to the training data.</summary>
    private static async Task AssertNothingWrittenAsync(ReviewScene scene, string image)
    {
        Assert.NotNull(await scene.Queue.GetAsync(image));
        Assert.Empty(await scene.ReviewNamesAsync(ReviewLabels.StagedPrefix));
        Assert.Empty(await scene.ReviewNamesAsync(ReviewLabels.RecordsPrefix));
        Assert.Empty(await scene.TrainingNamesAsync());
    }
}
