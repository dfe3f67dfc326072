using System.Text.Json;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// A test host with review and training containers of its own (the live model: red, green, blue), uploads listed in its
/// review queue, and review requests made as a given caller: App Service authentication's <c>x-ms-client-principal</c>
/// header as the platform sets it (<see cref="Principal"/>), or none.
/// </summary>
internal sealed class ReviewScene : IAsyncDisposable
{
    private ReviewScene(TestHost host, CapturingLoggerProvider logs)
    {
        Host = host;
        Logs = logs;
    }

    public TestHost Host { get; }

    public CapturingLoggerProvider Logs { get; }

    public ReviewQueue Queue => Host.Get<ReviewQueue>();

    public ReviewLabels Labels => Host.Get<ReviewLabels>();

    public BlobContainerClient Training => Host.Get<ClassifierContainers>().Training!;

    public Review Function => Host.Function<Review>();

    /// <summary>Named models' training data (<c>Classifier:NamedTrainingContainer</c>).</summary>
    public BlobContainerClient NamedTraining => Host.Get<ClassifierContainers>().NamedTraining!;

    public static async Task<ReviewScene> StartAsync(ServingModelFixture model, IDictionary<string, string?>? settings = null, BlobContainerClient? models = null)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var values = new Dictionary<string, string?>
        {
            ["Classifier:ReviewContainer"] = $"review-{suffix}",
            ["Classifier:TrainingContainer"] = $"training-{suffix}",
            ["Classifier:NamedTrainingContainer"] = $"training-models-{suffix}",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }
        var logs = new CapturingLoggerProvider();
        var host = await TestHost.StartAsync(values, models: models ?? await model.SharedModelsAsync(), logging: builder =>
        {
            builder.SetMinimumLevel(LogLevel.Information);
            builder.AddProvider(logs);
        });
        return new ReviewScene(host, logs);
    }

    /// <summary>Uploads a red square (or <paramref name="content"/>) as <paramref name="name"/> and lists it for review (an unknown prediction suggesting red); returns its version.</summary>
    public async Task<string> QueueAsync(string name, int seed = 1, byte[]? content = null)
    {
        await Host.UploadAsync(name, content ?? ServingModelFixture.Image("red", seed));
        var version = PredictionBlobs.VersionOf((await Host.Images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag);
        Assert.Equal(ReviewOutcome.Queued, await Queue.OfferAsync(new PredictionDocument
        {
            Status = PredictionStatus.Ok,
            Image = name,
            ImageVersion = version,
            ModelVersion = "v1",
            Label = "unknown",
            Confidence = 0.4,
            IsUnknown = true,
            Threshold = 0.5,
            UnknownReason = UnknownReasons.LowConfidence,
            Top = [new LabelProbability("red", 0.4), new LabelProbability("green", 0.35), new LabelProbability("blue", 0.25)],
            Source = PredictionSource.BlobTrigger,
        }));
        return version;
    }

    /// <summary><c>x-ms-client-principal</c> as App Service authentication sets it for a Microsoft Entra ID user with these app roles.</summary>
    public static string Principal(string objectId, string name, params string[] roles) =>
        Convert.ToBase64String(JsonSerializer.SerializeToUtf8Bytes(new
        {
            auth_typ = "aad",
            claims = new[]
            {
                new { typ = "http://schemas.microsoft.com/identity/claims/objectidentifier", val = objectId },
                new { typ = "name", val = name },
                new { typ = "preferred_username", val = $"{objectId}@example.org" },
            }.Concat(roles.Select(r => new { typ = "roles", val = r })),
            name_typ = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
            role_typ = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        }));

    public static readonly string Reviewer = Principal("11111111-1111-1111-1111-111111111111", "Rita Reviewer", ReviewRoles.Reviewer);

    public static readonly string Approver = Principal("22222222-2222-2222-2222-222222222222", "Abel Approver", ReviewRoles.Reviewer, ReviewRoles.Approver);

    /// <summary>A request carrying <paramref name="principal"/> (null: none, as with a function key alone).</summary>
    public static DefaultHttpContext Request(string? principal, object? body = null, string? query = null)
    {
        var context = TestHost.HttpContext(body is null ? null : JsonSerializer.SerializeToUtf8Bytes(body, JsonSerializerOptions.Web), contentType: "application/json", query: query);
        if (principal is not null)
        {
            context.Request.Headers[ReviewerIdentity.PrincipalHeader] = principal;
        }
        return context;
    }

    /// <summary>The answer to a label, as the caller gets it (the worker's middleware answers refusals).</summary>
    public Task<IActionResult> LabelAsync(string? principal, string image, string version, string? label) =>
        TestHost.AnswerAsync(Request(principal, new { image, imageVersion = version, label }), Function.Label);

    public Task<IActionResult> DecideAsync(string? principal, string id, bool approve) =>
        TestHost.AnswerAsync(Request(principal, new { id, approve }), Function.Decide);

    public async Task<List<string>> TrainingNamesAsync() =>
        (await Training.ExistsAsync()).Value
            ? await Training.GetBlobsAsync(BlobTraits.None, BlobStates.None, null, CancellationToken.None).Select(b => b.Name).ToListAsync()
            : [];

    public async Task<List<string>> ReviewNamesAsync(string prefix) =>
        await Queue.Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, CancellationToken.None).Select(b => b.Name).ToListAsync();

    public static int Status(IActionResult result) => Assert.IsAssignableFrom<IStatusCodeActionResult>(result).StatusCode ?? 200;

    /// <summary>The problem's <c>code</c>, after checking the status.</summary>
    public static string ProblemCode(IActionResult result, int status)
    {
        Assert.Equal(status, Status(result));
        var problem = Assert.IsType<ProblemDetails>(Assert.IsType<ObjectResult>(result).Value);
        return problem.Extensions["code"]?.ToString() ?? "";
    }

    public static T Value<T>(IActionResult result) => Assert.IsType<T>(Assert.IsType<OkObjectResult>(result).Value);

    public async ValueTask DisposeAsync()
    {
        await Queue.Container.DeleteIfExistsAsync();
        await Training.DeleteIfExistsAsync();
        await Host.DisposeAsync();
    }
}
