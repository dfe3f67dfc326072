using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.Tests.Common;

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

    /// <summary>
    /// A second decision that reads the staged label, then stalls until the first decision has been carried out completely
    /// (recorded, the bytes added, the staged label and its bytes removed) before it records its own. Before, it read the
    /// first decision's record (approved), looked for the staged bytes the first had just removed, and failed with a 500
    /// (seen once in CI in the test above). Now it answers NotStaged, and the image is in the training data once.
    /// </summary>
    [Fact]
    public async Task ADecisionOvertakenByAnotherCarriedOutMeanwhile_AnswersNotStaged_AndTheImageIsAddedOnce()
    {
        await using var scene = await ReviewScene.StartAsync(model);
        var version = await scene.QueueAsync("late/0.png", seed: 500);
        var id = ReviewScene.Value<LabelResult>(await scene.LabelAsync(ReviewScene.Approver, "late/0.png", version, "blue")).Id!;
        var gate = new RecordWriteGate();
        var options = new BlobClientOptions();
        options.AddPolicy(gate, HttpPipelinePosition.PerCall);
        var stalled = new ReviewLabels(new BlobContainerClient(TestStorage.ConnectionString, scene.Queue.Container.Name, options));
        var by = new ReviewActor { Id = "66666666-6666-6666-6666-666666666666", Name = "Late Approver", Source = ReviewActor.Sources.CommandLine };

        var second = ReviewLabeling.DecideAsync(stalled, TrainingImages.Blobs(scene.Training, ""), id, approve: false, by, DateTimeOffset.UtcNow);
        await gate.Reached.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Equal(200, ReviewScene.Status(await scene.DecideAsync(ReviewScene.Approver, id, approve: true)));
        gate.Release();
        var (outcome, record, name) = await second.WaitAsync(TimeSpan.FromMinutes(1));

        Assert.Equal(ApprovalOutcome.NotStaged, outcome);
        Assert.Equal(LabelDecisions.Approved, record!.Decision);
        Assert.Null(name);
        Assert.Null(await scene.Labels.GetStagedAsync(id));
        Assert.Equal(["blue/late_0.png"], await scene.TrainingNamesAsync());
    }

    /// <summary>Holds the first write of a decided record (a PUT under records/) until <see cref="Release"/>.</summary>
    private sealed class RecordWriteGate : HttpPipelinePolicy
    {
        private readonly TaskCompletionSource reached = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int held;

        public Task Reached => reached.Task;

        public void Release() => released.TrySetResult();

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
            throw new NotSupportedException("The review code calls storage asynchronously.");

        public override async ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            if (message.Request.Method == RequestMethod.Put && message.Request.Uri.Path.Contains("/" + ReviewLabels.RecordsPrefix, StringComparison.Ordinal)
                && Interlocked.Exchange(ref held, 1) == 0)
            {
                reached.TrySetResult();
                await released.Task.ConfigureAwait(false);
            }
            await ProcessNextAsync(message, pipeline).ConfigureAwait(false);
        }
    }
}
