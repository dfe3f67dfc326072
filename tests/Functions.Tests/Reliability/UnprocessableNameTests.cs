using Azure;
using Azure.Core;
using Azure.Core.Pipeline;
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

    private async Task<TestHost> StartAsync(CapturingLoggerProvider? log = null) => await TestHost.StartAsync(
        models: await model.SharedModelsAsync(),
        logging: builder =>
        {
            if (log is not null)
            {
                builder.AddProvider(log);
            }
        },
        configure: services => services.AddAzureClients(clients => clients.ConfigureDefaults(options => options.AddPolicy(new AzureBlobNameLimit(), HttpPipelinePosition.PerCall))));

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
        var written = (await Predictions.ReadAllAsync(host.Predictions)).Keys.Select(k => k.Length).Order().ToList();
        Assert.True(first.Failed == 0 && second.Failed == 0, $"{first} {second} written lengths {string.Join(',', written)}");
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

    /// <summary>Azure's answer to a blob name over 1,024 characters: 400 before anything is stored (Azurite accepts it).</summary>
    private sealed class AzureBlobNameLimit : HttpPipelinePolicy
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

        private static bool Refuse(HttpMessage message)
        {
            // Path: <account>/<container>/<blob> (Azurite's endpoints name the account first).
            var segments = Uri.UnescapeDataString(message.Request.Uri.Path).TrimStart('/').Split('/', 3);
            if (segments.Length < 3 || segments[2].Length <= MaxBlobNameLength)
            {
                return false;
            }
            message.Response = new RefusedResponse(message.Request.ClientRequestId);
            return true;
        }
    }

    private sealed class RefusedResponse(string clientRequestId) : Response
    {
        private readonly Dictionary<string, string> headers = new(StringComparer.OrdinalIgnoreCase) { ["x-ms-error-code"] = "OutOfRangeInput" };

        public override int Status => 400;

        public override string ReasonPhrase => "The specified resource name length is not within the permissible limits.";

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
