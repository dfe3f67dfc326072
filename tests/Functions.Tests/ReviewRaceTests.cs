using System.Text;
using Azure.Storage.Blobs.Models;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>Two reviewers labelling the same queued upload at once, with different labels.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class ReviewRaceTests(ServingModelFixture model)
{
    private static readonly string[] Reviewers = ["red", "green"];

    [Fact]
    public async Task TwoReviewersWithDifferentLabels_OneWins_AndTheImageIsAddedOnce()
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?>
        {
            ["Classifier:ReviewContainer"] = $"review-{suffix}",
            ["Classifier:TrainingContainer"] = $"training-{suffix}",
        }, models: await model.SharedModelsAsync());
        var queue = host.Get<ReviewQueue>();
        var images = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            var name = await host.UploadAsync($"race/{i}.png", ServingModelFixture.Image("red", seed: 300 + i));
            var version = PredictionBlobs.VersionOf((await host.Images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag);
            Assert.Equal(ReviewOutcome.Queued, await queue.OfferAsync(Unknown(name, version)));
            images.Add(name);
        }
        var review = host.Function<Review>();

        var statuses = new List<int?[]>();
        foreach (var image in images)
        {
            var version = (await queue.GetAsync(image))!.Item.ImageVersion;
            var answers = await Task.WhenAll(Reviewers.Select(label => Task.Run(async () =>
            {
                var body = Encoding.UTF8.GetBytes($$"""{ "image": "{{image}}", "imageVersion": "{{version}}", "label": "{{label}}" }""");
                var result = await review.Label(TestHost.HttpContext(body, contentType: "application/json").Request, CancellationToken.None);
                return ((IStatusCodeActionResult)result).StatusCode;
            })));

            statuses.Add([.. answers.Order()]);
        }
        var training = host.Get<Services.ClassifierContainers>().Training!;
        var added = await training.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).Select(b => b.Name).ToListAsync();
        Assert.Equal(images.Count, added.Count);
        Assert.All(statuses, s => Assert.Equal([200, 409], s));
    }

    private static PredictionDocument Unknown(string image, string version) => new()
    {
        Status = PredictionStatus.Ok,
        Image = image,
        ImageVersion = version,
        ModelVersion = "v1",
        Label = "unknown",
        Confidence = 0.4,
        IsUnknown = true,
        Threshold = 0.5,
        UnknownReason = UnknownReasons.LowConfidence,
        Top = [new LabelProbability("red", 0.4), new LabelProbability("green", 0.35), new LabelProbability("blue", 0.25)],
        ClassifiedUtc = DateTimeOffset.UtcNow,
        Source = PredictionSource.BlobTrigger,
    };
}
