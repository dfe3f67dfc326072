using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// One Functions host for all end-to-end tests: the app published once for the run (<see cref="PublishedApp"/>),
/// run by the real host (<see cref="FunctionsHost"/>) against the test Azurite with containers of its own and the test model
/// published as <c>v1</c> before the host starts. Its standard output is kept (for the log checks), and the time from
/// starting the host to its first answer is measured. <see cref="NoModelHostFixture"/> is the same app with nothing published.
/// </summary>
public class FunctionsHostFixture : IAsyncLifetime
{
    public const string FunctionKey = "e2e-function-key-000000000000000000000000000";
    public const string MasterKey = "e2e-master-key-00000000000000000000000000000";
    public const string BlobsExtensionKey = "e2e-blobs-extension-key-00000000000000000000";

    /// <summary>The named model published beside the default one (<c>s1</c>: the reversed labels).</summary>
    public const string SecondModel = "e2e-second";

    /// <summary>Custom Vision project ids the app maps to the default model and to <see cref="SecondModel"/>.</summary>
    public static readonly Guid DefaultProject = new("3f2b8c4e-0d6a-4e1f-9b7c-5a8d2e6f1c30");

    public static readonly Guid SecondProject = new("a7c1e9d2-4b3f-4c8a-8e6d-1f0b9c2d7e45");

    /// <summary>Bytes over which an image is refused (HTTP 413, prediction TooLarge); small, so that "huge" is cheap to upload.</summary>
    public const int MaxBytes = 300_000;

    private readonly Lock gate = new();
    private readonly bool withModel;
    private Task? started;
    private FunctionsHost? host;

    public FunctionsHostFixture()
        : this(withModel: true)
    {
    }

    /// <param name="withModel">False: no model is published, and the host is ready when <c>/api/health</c> answers.</param>
    protected FunctionsHostFixture(bool withModel) => this.withModel = withModel;

    public HttpClient Http { get; } = new() { Timeout = TimeSpan.FromSeconds(60) };

    public BlobContainerClient Images { get; private set; } = null!;

    public BlobContainerClient Predictions { get; private set; } = null!;

    public ModelStore Store { get; private set; } = null!;

    /// <summary>Host process start to <c>/api/health</c> answering 200.</summary>
    public TimeSpan ToFirstHealth { get; private set; }

    /// <summary>Host process start to the first 200 of <c>POST /api/classify</c> (the model loaded); not measured with no model.</summary>
    public TimeSpan ToFirstClassification { get; private set; }

    public DateTime StartedUtc { get; private set; }

    /// <summary>How many log lines the host had written when it first answered a classification (its start-up dump).</summary>
    public int StartupLogLines { get; private set; }

    /// <summary>When the host first answered a classification.</summary>
    public DateTime ReadyUtc { get; private set; }

    /// <summary>The host's standard output so far (its log, with the worker's).</summary>
    public IReadOnlyList<string> Log => host?.Lines ?? [];

    /// <summary>The review queue (<c>Classifier:ReviewContainer</c>) and the training data the review page adds to.</summary>
    public BlobContainerClient Review { get; private set; } = null!;

    public BlobContainerClient Training { get; private set; } = null!;

    /// <summary>
    /// Publishes the app and starts the host, once, serving <paramref name="modelFolder"/> (default: the fixture's
    /// plain model) as <c>v1</c>; later calls wait for the same start.
    /// </summary>
    /// <summary>Fanned-out jobs' container, and the queue the app's ClassifyShard reads.</summary>
    public BlobContainerClient Jobs { get; private set; } = null!;

    public string ShardQueue { get; private set; } = null!;

    public string ModelsContainer { get; private set; } = null!;

    public Task EnsureStartedAsync(ServingModelFixture model, string? modelFolder = null)
    {
        lock (gate)
        {
            return started ??= StartAsync(model, modelFolder ?? model.Folder);
        }
    }

    public Uri Url(string pathAndQuery) => new(Http.BaseAddress!, pathAndQuery);

    private async Task StartAsync(ServingModelFixture model, string modelFolder)
    {
        var app = PublishedApp.Directory;

        var suffix = Guid.NewGuid().ToString("N")[..12];
        var account = TestStorage.CreateServiceClient();
        Images = account.GetBlobContainerClient($"e2e-images-{suffix}");
        Predictions = account.GetBlobContainerClient($"e2e-predictions-{suffix}");
        var models = account.GetBlobContainerClient($"e2e-models-{suffix}");
        await Images.CreateAsync();
        await Predictions.CreateAsync();
        await models.CreateAsync();
        Store = new ModelStore(models);
        Review = account.GetBlobContainerClient($"e2e-review-{suffix}");
        Training = account.GetBlobContainerClient($"e2e-training-{suffix}");
        Jobs = account.GetBlobContainerClient($"e2e-jobs-{suffix}");
        ShardQueue = $"e2e-shards-{suffix}";
        // The containers and queues the deployment creates (infra/main.bicep: the review and training containers, the jobs
        // container, the shard queue, its poison queue, the blob trigger's poison queue), created here too, so that the
        // host's and the app's first requests to them are not 404 warnings in its log.
        foreach (var container in new[] { Review, Training, Jobs })
        {
            await container.CreateIfNotExistsAsync();
        }
        foreach (var queue in new[] { ShardQueue, ShardQueue + "-poison", "webjobs-blobtrigger-poison" })
        {
            await new Azure.Storage.Queues.QueueClient(TestStorage.ConnectionString, queue).CreateIfNotExistsAsync();
        }
        // What the host creates in its own storage on an app's very first start (its lease container, the blob trigger's
        // host queue, named by the host id), as it finds them on every later start. The host id is fixed so that the
        // queue's name is known; without it the host derives one from the machine and the app's path.
        await account.GetBlobContainerClient("azure-webjobs-hosts").CreateIfNotExistsAsync();
        await new Azure.Storage.Queues.QueueClient(TestStorage.ConnectionString, $"azure-webjobs-blobtrigger-{HostId}").CreateIfNotExistsAsync();
        ModelsContainer = models.Name;
        if (withModel)
        {
            await Store.PublishAsync(modelFolder, version: "v1");
            await Store.PublishAsync(model.ReversedFolder, makeCurrent: false, version: "v2");
            await new ModelStore(models, SecondModel).PublishAsync(model.ReversedFolder, version: "s1");
        }

        var port = FunctionsHost.FreePort();
        Http.BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        var settings = new Dictionary<string, string>
        {
            ["AzureWebJobsStorage"] = TestStorage.ConnectionString,
            ["AzureFunctionsWebHost__hostid"] = HostId,
            ["ClassifierStorage"] = TestStorage.ConnectionString,
            ["Classifier__ImagesContainer"] = Images.Name,
            ["Classifier__PredictionsContainer"] = Predictions.Name,
            ["Classifier__ModelsContainer"] = models.Name,
            ["Classifier__ReviewContainer"] = Review.Name,
            ["Classifier__TrainingContainer"] = Training.Name,
            ["Classifier__JobsContainer"] = Jobs.Name,
            ["Classifier__ShardQueue"] = ShardQueue,
            // The sweep runs when a test asks for it (the admin API); its schedule is once a year.
            ["Classifier__SweepSchedule"] = "0 0 0 1 1 *",
            ["Classifier__SweepMinImageAge"] = "00:00:00",
            ["Classifier__ModelRefreshInterval"] = "00:00:02",
            // The instance's local model cache (LocalModelCache), fresh for this host.
            ["Classifier__ModelCacheDirectory"] = ModelCache,
            ["Classifier__MaxBytes"] = MaxBytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Event Grid deliveries go through the host's blob-trigger queue, which otherwise backs off to a minute when idle.
            ["AzureFunctionsJobHost__extensions__queues__maxPollingInterval"] = "00:00:02",
            // Custom Vision clients send the function key as their Prediction-Key (the host itself never reads that header).
            ["Classifier__CustomVisionProjects"] = $"{DefaultProject}=default,{SecondProject}={SecondModel}",
            ["Classifier__CustomVisionPredictionKeys"] = FunctionKey,
            ["FUNCTIONS_HOST_FUNCTION_KEY"] = FunctionKey,
            ["FUNCTIONS_HOST_MASTER_KEY"] = MasterKey,
            ["FUNCTIONS_HOST_BLOBS_EXTENSION_KEY"] = BlobsExtensionKey,
        };
        File.Delete(LastLogFile);
        var clock = Stopwatch.StartNew();
        StartedUtc = DateTime.UtcNow;
        host = FunctionsHost.Start(app, settings, port, line => File.AppendAllText(LastLogFile, $"{DateTime.UtcNow:HH:mm:ss.fff} {line}\n"));

        ToFirstHealth = await WaitForAsync(clock, async () => (await Http.GetAsync(Url("api/health"))).StatusCode == HttpStatusCode.OK);
        if (withModel)
        {
            ToFirstClassification = await WaitForAsync(clock, async () =>
            {
                using var request = Classify(ServingModelFixture.Image("red", seed: 900));
                return (await Http.SendAsync(request)).StatusCode == HttpStatusCode.OK;
            });
        }
        StartupLogLines = host.Lines.Count;
        ReadyUtc = DateTime.UtcNow;
    }

    /// <summary><c>POST /api/classify</c> with the function key (unless <paramref name="withKey"/> is false).</summary>
    public HttpRequestMessage Classify(byte[] body, string contentType = "image/png", string query = "", bool withKey = true)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, Url("api/classify" + query)) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(contentType);
        if (withKey)
        {
            request.Headers.Add("x-functions-key", FunctionKey);
        }
        return request;
    }

    /// <summary>
    /// Sends <paramref name="request"/> and checks that the answer is the RFC 9457 problem with <paramref name="status"/>
    /// and <paramref name="code"/>, and that it does not say where the storage is; returns the answer's headers.
    /// </summary>
    public async Task<HttpResponseHeaders> AssertProblemAsync(HttpRequestMessage request, HttpStatusCode status, string code)
    {
        using (request)
        {
            using var response = await Http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == status, $"{request.RequestUri}: {(int)response.StatusCode} {body}");
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonNode.Parse(body)!;
            Assert.Equal(code, (string?)problem["code"]);
            Assert.Equal((int)status, (int?)problem["status"]);
            Assert.False(string.IsNullOrWhiteSpace((string?)problem["detail"]), body);
            Assert.DoesNotContain("127.0.0.1", body, StringComparison.Ordinal);
            return response.Headers;
        }
    }

    /// <summary>A GET of <paramref name="pathAndQuery"/> with the function key.</summary>
    public HttpRequestMessage Get(string pathAndQuery) => ReviewRequest(HttpMethod.Get, pathAndQuery, principal: null);

    /// <summary>
    /// A request with the function key (unless <paramref name="withKey"/> is false), as signed in as
    /// <paramref name="principal"/> (<c>x-ms-client-principal</c>, which the host's App Service authentication passes
    /// through as Azure's sets it; null: not signed in), with <paramref name="body"/> as JSON.
    /// </summary>
    public HttpRequestMessage ReviewRequest(HttpMethod method, string pathAndQuery, string? principal, object? body = null, bool withKey = true)
    {
        var request = new HttpRequestMessage(method, Url(pathAndQuery));
        if (withKey)
        {
            request.Headers.Add("x-functions-key", FunctionKey);
        }
        if (principal is not null)
        {
            request.Headers.Add(Services.ReviewerIdentity.PrincipalHeader, principal);
        }
        if (body is not null)
        {
            request.Content = System.Net.Http.Json.JsonContent.Create(body);
        }
        return request;
    }

    public Task InitializeAsync() => Task.CompletedTask;

    /// <summary>The host's local model cache folder (fresh per fixture, deleted with it).</summary>
    public string ModelCache { get; } = Path.Combine(Path.GetTempPath(), $"e2e-model-cache-{Guid.NewGuid():N}");

    public async Task DisposeAsync()
    {
        host?.Dispose();
        Http.Dispose();
        if (Directory.Exists(ModelCache))
        {
            Directory.Delete(ModelCache, recursive: true);
        }
        if (Images is not null)
        {
            await Images.DeleteIfExistsAsync();
            await Predictions.DeleteIfExistsAsync();
            await Store.Container.DeleteIfExistsAsync();
            await Review.DeleteIfExistsAsync();
            await Training.DeleteIfExistsAsync();
            await Jobs.DeleteIfExistsAsync();
        }
    }

    /// <summary>The host id every test host runs with (at most 32 characters: lower-case letters, digits and dashes).</summary>
    private const string HostId = "e2e-classifier-host";

    /// <summary>The host's log of the last run is kept here for a look after a failure.</summary>

    public static string LastLogFile => Path.Combine(Path.GetTempPath(), "functions-e2e-host.log");

    private async Task<TimeSpan> WaitForAsync(Stopwatch clock, Func<Task<bool>> ready)
    {
        var deadline = clock.Elapsed + TimeSpan.FromMinutes(3);
        while (true)
        {
            if (host!.HasExited)
            {
                throw new InvalidOperationException($"The Functions host exited ({host.ExitCode}):\n{string.Join('\n', host.Lines.TakeLast(60))}");
            }
            try
            {
                if (await ready())
                {
                    return clock.Elapsed;
                }
            }
            catch (HttpRequestException)
            {
                // Not listening yet.
            }
            if (clock.Elapsed > deadline)
            {
                throw new TimeoutException($"The Functions host did not answer in time:\n{string.Join('\n', host.Lines.TakeLast(60))}");
            }
            await Task.Delay(100);
        }
    }
}
