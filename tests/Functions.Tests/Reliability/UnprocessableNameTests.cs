using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
using Azure.Storage.Blobs.Specialized;
using Microsoft.Extensions.Azure;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>
/// Names of 1,020 to 1,024 characters are valid blob names, but their prediction (<c>&lt;name&gt;.json</c>) is over
/// Azure's 1,024-character limit and can never be written: such images must neither stop the sweep nor poison the
/// trigger. Azurite does not enforce the limit, so the storage client here does, as Azure answers it (400).
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class UnprocessableNameTests(ServingModelFixture model)
{
    /// <summary>A name of exactly <paramref name="length"/> characters that sorts before "b".</summary>
    private static string LongName(int length, int i)
    {
        var stem = $"a/{i:D3}-";
        return stem + new string('n', length - stem.Length - 4) + ".png";
    }

    private async Task<TestHost> StartAsync(CapturingLoggerProvider? log = null, Func<string, bool>? refuse = null, IDictionary<string, string?>? settings = null) =>
        await TestHost.StartAsync(
            settings,
            models: await model.SharedModelsAsync(),
            logging: builder =>
            {
                if (log is not null)
                {
                    builder.AddProvider(log);
                }
            },
            configure: services => services.AddAzureClients(clients => clients.ConfigureDefaults(options =>
                options.AddPolicy(new AzureBlobNameLimit(refuse ?? (_ => false)), HttpPipelinePosition.PerCall))));

    [Fact]
    public async Task HundredImagesWhosePredictionCannotBeNamed_DoNotStopTheSweepFromReachingLaterImages()
    {
        var log = new CapturingLoggerProvider();
        await using var host = await StartAsync(log);
        var image = ServingModelFixture.Image("blue", seed: 720, width: 48, height: 48);
        for (var i = 0; i < 100; i++)
        {
            var name = LongName(1020 + (i % 5), i);
            Assert.Equal(1020 + (i % 5), name.Length);
            await host.UploadAsync(name, image);
        }
        await host.UploadAsync("b/later.png", ServingModelFixture.Image("green", seed: 721, width: 48, height: 48));

        var sweeper = host.Get<UnclassifiedImageSweeper>();
        var first = await sweeper.SweepAsync(CancellationToken.None);
        var second = await sweeper.SweepAsync(CancellationToken.None);

        Assert.True(await host.Predictions.GetBlobClient("b/later.png.json").ExistsAsync(),
            $"no prediction for the later image; first run {first}, second {second}; {log.Messages.FirstOrDefault(m => m.Contains("failed", StringComparison.Ordinal))}");
        var later = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, "b/later.png");
        Assert.Equal(("green", PredictionSource.Sweep), (later.Label, later.Source));
        Assert.Equal((0, 0, 100), (first.Failed, second.Found, first.NamesTooLong));
        Assert.Single(await Predictions.ReadAllAsync(host.Predictions));
        // One warning per sweep counts them all (not one per image).
        Assert.Equal(2, log.Messages.Count(m => m.Contains("100 images have names too long for a prediction", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task TriggerHandedANameWhosePredictionCannotBeNamed_ReturnsNormallyAndWritesNothing()
    {
        await using var host = await StartAsync();
        var name = LongName(1022, 0);
        await host.UploadAsync(name, ServingModelFixture.Image("blue", seed: 722, width: 48, height: 48));

        // Thrown, the host would retry it poisonBlobThreshold times and then park it on the poison queue.
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        Assert.Empty(await Predictions.ReadAllAsync(host.Predictions));
    }

    /// <summary>
    /// Images that always fail (here storage refuses to read them, 403) are passed over by the next sweeps, so as many of
    /// them as the per-run bound do not keep the sweep from the images after them; they are tried again later.
    /// </summary>
    [Fact]
    public async Task HundredImagesThatAlwaysFail_ArePassedOverByTheNextSweep_WhichReachesLaterImages()
    {
        await using var host = await StartAsync(refuse: name => name.Contains("/broken-", StringComparison.Ordinal));
        var image = ServingModelFixture.Image("blue", seed: 723, width: 48, height: 48);
        for (var i = 0; i < 100; i++)
        {
            await host.UploadAsync($"a/broken-{i:D3}.png", image);
        }
        await host.UploadAsync("b/later.png", ServingModelFixture.Image("green", seed: 724, width: 48, height: 48));

        var sweeper = host.Get<UnclassifiedImageSweeper>();
        var first = await sweeper.SweepAsync(CancellationToken.None);
        var second = await sweeper.SweepAsync(CancellationToken.None);
        var third = await sweeper.SweepAsync(CancellationToken.None);
        var fourth = await sweeper.SweepAsync(CancellationToken.None);

        Assert.Equal((100, 100, true), (first.Found, first.Failed, first.LimitReached));
        Assert.Equal((1, 1, 100), (second.Found, second.Classified, second.PassedOver));
        var later = await BlobTriggerTests.ReadPredictionAsync(host.Predictions, "b/later.png");
        Assert.Equal(("green", PredictionSource.Sweep), (later.Label, later.Source));
        // Tried again after one sweep's pause; failing again, they are passed over by the next two.
        Assert.Equal((100, 100), (third.Found, third.Failed));
        Assert.Equal((0, 100), (fourth.Found, fourth.PassedOver));
    }

    /// <summary>A name of 1,014 to 1,019 characters has a prediction, but its review item (<c>items/&lt;name&gt;.json</c>) cannot exist.</summary>
    [Fact]
    public async Task UncertainImageWhoseReviewItemCannotBeNamed_GetsItsPredictionAndIsNotListed()
    {
        var review = $"review-{Guid.NewGuid():N}";
        await using var host = await StartAsync(settings: new Dictionary<string, string?> { ["Classifier:ReviewContainer"] = review, ["Classifier:ReviewMarginBelow"] = "1" });
        try
        {
            var name = LongName(1016, 0);
            await host.UploadAsync(name, ServingModelFixture.Image("blue", seed: 725, width: 48, height: 48));

            await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

            var (written, prediction) = Assert.Single(await Predictions.ReadAllAsync(host.Predictions));
            Assert.Equal((name + ".json", "ok"), (written, prediction.Status()));
            await foreach (var item in host.Get<ModelCore.Review.ReviewQueue>().ListAsync())
            {
                Assert.Fail($"{item.Item.Image} was listed");
            }
        }
        finally
        {
            await host.Images.GetParentBlobServiceClient().GetBlobContainerClient(review).DeleteIfExistsAsync();
        }
    }

    /// <summary>
    /// Azure's answer to a blob name over 1,024 characters: 400 before anything is stored (Azurite accepts it); and a
    /// 403 for reading the blobs <c>refuse</c> names (an image that always fails).
    /// </summary>
    private sealed class AzureBlobNameLimit(Func<string, bool> refuse) : HttpPipelinePolicy
    {
        public const int MaxBlobNameLength = 1024;

        public override void Process(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline)
        {
            if (!Refuse(message))
            {
                ProcessNext(message, pipeline);
            }
        }

        public override ValueTask ProcessAsync(HttpMessage message, ReadOnlyMemory<HttpPipelinePolicy> pipeline) =>
            Refuse(message) ? ValueTask.CompletedTask : ProcessNextAsync(message, pipeline);

        private bool Refuse(HttpMessage message)
        {
            // Path: <account>/<container>/<blob> (Azurite's endpoints name the account first).
            var segments = Uri.UnescapeDataString(message.Request.Uri.Path).TrimStart('/').Split('/', 3);
            if (segments.Length < 3)
            {
                return false;
            }
            if (segments[2].Length > MaxBlobNameLength)
            {
                message.Response = new RefusedResponse(400, "OutOfRangeInput", message.Request.ClientRequestId);
                return true;
            }
            if (refuse(segments[2]) && (message.Request.Method == RequestMethod.Get || message.Request.Method == RequestMethod.Head))
            {
                message.Response = new RefusedResponse(403, "AuthorizationPermissionMismatch", message.Request.ClientRequestId);
                return true;
            }
            return false;
        }
    }

    private sealed class RefusedResponse(int status, string code, string clientRequestId) : Response
    {
        private readonly Dictionary<string, string> headers = new(StringComparer.OrdinalIgnoreCase) { ["x-ms-error-code"] = code };

        public override int Status => status;

        public override string ReasonPhrase => code;

        public override Stream? ContentStream { get; set; } = new MemoryStream();

        public override string ClientRequestId { get; set; } = clientRequestId;

        public override void Dispose()
        {
        }

        protected override bool ContainsHeader(string name) => headers.ContainsKey(name);

        protected override IEnumerable<HttpHeader> EnumerateHeaders() => headers.Select(h => new HttpHeader(h.Key, h.Value));

        protected override bool TryGetHeader(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out string? value) => headers.TryGetValue(name, out value);

        protected override bool TryGetHeaderValues(string name, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out IEnumerable<string>? values)
        {
            values = headers.TryGetValue(name, out var value) ? [value] : null;
            return values is not null;
        }
    }
}
