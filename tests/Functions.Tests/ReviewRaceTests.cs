using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.ModelCore.Review;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Two reviewers labelling the same queued upload at once, with different labels. Before, the image was added to the
/// training data first and the queue item removed after, the removal's result ignored: both were answered 200 and each
/// upload was added twice, once under each label (12 training images for 6 uploads, seen with this test). Now the item
/// is removed first (If-Match) and only the reviewer whose removal succeeded stages a label.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewRaceTests(ServingModelFixture model)
{
    private static readonly (string Principal, string Label)[] Reviewers =
    [
        (ReviewScene.Principal("44444444-4444-4444-4444-444444444444", "Ada", "Reviewer"), "red"),
        (ReviewScene.Principal("55555555-5555-5555-5555-555555555555", "Ben", "Reviewer"), "green"),
    ];

    private static readonly bool[] ApproveAndReject = [true, false];

    [Fact]
    public async Task TwoReviewersWithDifferentLabels_OneWins_AndTheImageIsAddedOnce()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var images = new List<(string Image, string Version)>();
        for (var i = 0; i < 6; i++)
        {
            images.Add(($"race/{i}.png", await scene.QueueAsync($"race/{i}.png", seed: 300 + i)));
        }

        var winners = new Dictionary<string, string>();
        foreach (var (image, version) in images)
        {
            var answers = await Task.WhenAll(Reviewers.Select(r => Task.Run(() => scene.LabelAsync(r.Principal, image, version, r.Label))));

            Assert.Equal([200, 409], answers.Select(ReviewScene.Status).Order());
            Assert.Equal("NotQueued", ReviewScene.ProblemCode(answers.Single(a => ReviewScene.Status(a) == 409), 409));
            winners[image] = ReviewScene.Value<LabelResult>(answers.Single(a => ReviewScene.Status(a) == 200)).Label!;
        }
        var staged = await scene.Labels.ListStagedAsync().ToListAsync();
        Assert.Equal(images.Count, staged.Count);
        Assert.All(staged, s => Assert.Equal(winners[s.Record.Image], s.Record.Label));

        foreach (var s in staged)
        {
            Assert.Equal(200, ReviewScene.Status(await scene.DecideAsync(ReviewScene.Approver, s.Record.Id, approve: true)));
        }
        var added = await scene.TrainingNamesAsync();
        Assert.Equal(images.Count, added.Count);
        Assert.Equal(images.Select(i => $"{winners[i.Image]}/{ReviewLabeling.FileNameFor(i.Image)}").Order(StringComparer.Ordinal), added.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task TwoApproversDecidingOneLabelAtOnce_TheFirstDecisionCounts_AndTheImageIsAddedAtMostOnce()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        for (var i = 0; i < 4; i++)
        {
            var version = await scene.QueueAsync($"decide/{i}.png", seed: 400 + i);
            var id = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Approver, $"decide/{i}.png", version, "blue")).Id!;

            var answers = await Task.WhenAll(ApproveAndReject.Select(approve => Task.Run(() => scene.DecideAsync(ReviewScene.Approver, id, approve))));

            var record = await scene.Labels.GetRecordAsync(id);
            var names = await scene.TrainingNamesAsync();
            Assert.Equal(record!.Decision == LabelDecisions.Approved ? 1 : 0, names.Count(n => n == $"blue/decide_{i}.png"));
            Assert.All(answers, a => Assert.True(ReviewScene.Status(a) is 200 or 409));
        }
    }
}
