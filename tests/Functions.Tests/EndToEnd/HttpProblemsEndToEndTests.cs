using System.Net;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// The answers <see cref="Middleware.HttpProblemsMiddleware"/> gives, through the real Functions host, where the app has
/// no model (<see cref="NoModelHostFixture"/>): 503 with Retry-After from classify and the model endpoint, the review
/// thumbnail of an image the decoder refuses, and, for an exception nobody maps, the host's own answer. The refused
/// requests and images of classify are in <see cref="EndToEndTests.Http_KeysAndStatusCodes_AreAsDocumented"/>.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class HttpProblemsEndToEndTests(ServingModelFixture model, NoModelHostFixture host) : IClassFixture<NoModelHostFixture>
{
    /// <summary>The fixture's <c>Classifier__ModelRefreshInterval</c> (2 s), which is also the 503's Retry-After.</summary>
    private const string RetryAfter = "2";

    [HostFact]
    public async Task NoModel_ClassifyAndModelAre503NoModelWithRetryAfter_AndTheReviewListStillAnswers()
    {
        await host.EnsureStartedAsync(model);

        var classify = await host.AssertProblemAsync(host.Classify(ServingModelFixture.Image("red", seed: 960)), HttpStatusCode.ServiceUnavailable, "NoModel");
        Assert.Equal(RetryAfter, classify.RetryAfter?.ToString());
        var summary = await host.AssertProblemAsync(host.Get("api/model"), HttpStatusCode.ServiceUnavailable, "NoModel");
        Assert.Equal(RetryAfter, summary.RetryAfter?.ToString());
        // Refused before a model is asked for: the request's own problem, not the missing model.
        await host.AssertProblemAsync(host.Classify(ServingModelFixture.Image("red", seed: 961), query: "?top=0"), HttpStatusCode.BadRequest, "InvalidTop");
        await host.AssertProblemAsync(host.Classify([1, 2, 3], contentType: "text/plain"), HttpStatusCode.UnsupportedMediaType, "UnsupportedMediaType");

        // The review list catches "no model" itself: it lists the queue without the model's labels.
        using var list = await host.Http.SendAsync(host.Get("api/review"));
        Assert.Equal(HttpStatusCode.OK, list.StatusCode);
        Assert.Null(list.Headers.RetryAfter);
    }

    [HostFact]
    public async Task ReviewThumbnail_OfAQueuedImageTheDecoderRefuses_IsItsProblem()
    {
        await host.EnsureStartedAsync(model);
        var png = ServingModelFixture.Image("green", seed: 962);
        var corrupt = await QueueAsync("thumbnails/corrupt.png", png[..(png.Length / 2)]);
        var text = await QueueAsync("thumbnails/text.png", "not an image at all"u8.ToArray());
        var good = await QueueAsync("thumbnails/good.png", png);

        await host.AssertProblemAsync(host.Get($"api/review/thumbnail?image={Uri.EscapeDataString(corrupt)}"), HttpStatusCode.BadRequest, "Corrupt");
        await host.AssertProblemAsync(host.Get($"api/review/thumbnail?image={Uri.EscapeDataString(text)}"), HttpStatusCode.UnsupportedMediaType, "UnsupportedFormat");
        // Answered by the function itself, as before.
        await host.AssertProblemAsync(host.Get("api/review/thumbnail?image=thumbnails%2Fnever-queued.png"), HttpStatusCode.NotFound, "NotQueued");
        await host.AssertProblemAsync(host.Get("api/review/thumbnail"), HttpStatusCode.BadRequest, "NoImage");
        using var thumbnail = await host.Http.SendAsync(host.Get($"api/review/thumbnail?image={Uri.EscapeDataString(good)}"));
        Assert.Equal(HttpStatusCode.OK, thumbnail.StatusCode);
        Assert.Equal("image/jpeg", thumbnail.Content.Headers.ContentType?.MediaType);
    }

    /// <summary>
    /// A review item that is not JSON makes the thumbnail function throw a JsonException, which no answer maps: the
    /// host answers 500 with an empty body, nothing of the exception in it, as it answered every unexpected exception
    /// before the middleware (measured with the app as it was).
    /// </summary>
    [HostFact]
    public async Task AnExceptionNobodyMaps_IsTheHosts500_WithoutItsMessage()
    {
        await host.EnsureStartedAsync(model);
        await host.Review.CreateIfNotExistsAsync();
        var broken = host.Review.GetBlobClient(ReviewQueue.ItemBlobName("broken/item.png"));
        await broken.UploadAsync(BinaryData.FromString("not json"), overwrite: true);
        try
        {
            using var response = await host.Http.SendAsync(host.Get("api/review/thumbnail?image=broken%2Fitem.png"));
            var body = await response.Content.ReadAsStringAsync();

            Assert.True(response.StatusCode == HttpStatusCode.InternalServerError && body.Length == 0, $"{(int)response.StatusCode} {body}");
        }
        finally
        {
            // The review list reads every item: a broken one would fail it in the other tests of this host.
            await broken.DeleteAsync();
        }
    }

    /// <summary>Uploads <paramref name="content"/> as <paramref name="name"/> and lists that version for review, as the blob trigger would have.</summary>
    private async Task<string> QueueAsync(string name, byte[] content)
    {
        var blob = host.Images.GetBlobClient(name);
        var uploaded = (await blob.UploadAsync(BinaryData.FromBytes(content), overwrite: true)).Value;
        var item = new ReviewItem { Image = name, ImageVersion = PredictionBlobs.VersionOf(uploaded.ETag), SuggestedLabel = "green", QueuedUtc = DateTimeOffset.UtcNow };
        await host.Review.CreateIfNotExistsAsync();
        await host.Review.GetBlobClient(ReviewQueue.ItemBlobName(name)).UploadAsync(BinaryData.FromBytes(item.ToUtf8Bytes()), overwrite: true);
        return name;
    }
}
