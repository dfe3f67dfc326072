using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Middleware;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The app's real service registrations (<see cref="ClassifierServiceCollectionExtensions.AddClassifierServices"/>)
/// over the test Azurite (<c>ClassifierStorage</c> = CLASSIFIER_TEST_STORAGE) with containers of its own, and the
/// function classes created as the worker creates them (constructor injection).
/// </summary>
public sealed class TestHost : IAsyncDisposable
{
    private readonly ServiceProvider services;
    private readonly List<BlobContainerClient> owned = [];
    private string? cacheFolder;

    private TestHost(ServiceProvider services, BlobContainerClient images, BlobContainerClient predictions, BlobContainerClient models)
    {
        this.services = services;
        Images = images;
        Predictions = predictions;
        Models = models;
    }

    public BlobContainerClient Images { get; }

    public BlobContainerClient Predictions { get; }

    public BlobContainerClient Models { get; }

    public IServiceProvider Services => services;

    public ModelProvider ModelProvider => services.GetRequiredService<ModelProvider>();

    public ModelStore Store => new(Models);

    /// <summary>A setting of the host's configuration (the test's settings over the defaults above).</summary>
    public string Configuration(string key) => services.GetRequiredService<IConfiguration>()[key]
        ?? throw new InvalidOperationException($"The test host has no setting {key}.");

    /// <summary>
    /// A host with fresh containers; <paramref name="models"/> may be shared (read-only use of an already published model).
    /// <paramref name="connectionString"/> points it at another storage account than the test Azurite (a private
    /// Azurite of a fault test); <paramref name="logging"/> adds logging providers (a capturing one);
    /// <paramref name="configure"/> changes registrations after the app's own (the storage SDK's retry options).
    /// </summary>
    public static async Task<TestHost> StartAsync(
        IDictionary<string, string?>? settings = null,
        BlobContainerClient? models = null,
        string? connectionString = null,
        Action<ILoggingBuilder>? logging = null,
        Action<IServiceCollection>? configure = null)
    {
        connectionString ??= TestStorage.ConnectionString;
        var account = new BlobServiceClient(connectionString);
        var images = account.GetBlobContainerClient($"images-{Guid.NewGuid():N}");
        await images.CreateAsync();
        var predictions = account.GetBlobContainerClient($"predictions-{Guid.NewGuid():N}");
        if (models is null)
        {
            models = account.GetBlobContainerClient($"models-{Guid.NewGuid():N}");
            await models.CreateAsync();
        }
        var values = new Dictionary<string, string?>
        {
            ["ClassifierStorage"] = connectionString,
            ["Classifier:ImagesContainer"] = images.Name,
            ["Classifier:PredictionsContainer"] = predictions.Name,
            ["Classifier:ModelsContainer"] = models.Name,
            ["Classifier:SweepMinImageAge"] = "00:00:00",
        };
        // Each host is a fresh instance: its own local model cache (a shared one would serve another test's verified copy).
        var cache = Directory.CreateTempSubdirectory("test-host-model-cache-").FullName;
        values["Classifier:ModelCacheDirectory"] = cache;
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            values[key] = value;
        }
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(values).Build();
        var collection = new ServiceCollection()
            .AddSingleton<IConfiguration>(configuration)
            .AddLogging(builder =>
            {
                builder.SetMinimumLevel(LogLevel.Warning);
                logging?.Invoke(builder);
            });
        collection.AddClassifierServices();
        configure?.Invoke(collection);
        var host = new TestHost(collection.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true }), images, predictions, models);
        host.cacheFolder = cache;
        host.owned.Add(images);
        host.owned.Add(predictions);
        return host;
    }

    /// <summary>A function class, created the way the worker creates it.</summary>
    public T Function<T>() where T : class => ActivatorUtilities.CreateInstance<T>(services);

    public T Get<T>() where T : notnull => services.GetRequiredService<T>();

    public async Task<string> UploadAsync(string name, byte[] content)
    {
        await Images.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(content), overwrite: true);
        return name;
    }

    public static DefaultHttpContext HttpContext(byte[]? body = null, string? contentType = "image/png", string? query = null)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = "POST";
        context.Request.ContentType = contentType;
        if (body is not null)
        {
            context.Request.Body = new MemoryStream(body);
            context.Request.ContentLength = body.Length;
        }
        if (query is not null)
        {
            context.Request.QueryString = new QueryString(query);
        }
        return context;
    }

    /// <summary>
    /// An HTTP function's answer as a caller gets it: what <paramref name="function"/> returns for
    /// <paramref name="context"/>'s request, or, when it throws, the answer the worker's <see cref="HttpProblemsMiddleware"/>
    /// gives (<see cref="Problems.For(Exception, HttpResponse)"/>, headers on <paramref name="context"/>'s response). An
    /// exception the middleware does not answer propagates, as it does to the host.
    /// </summary>
    public static async Task<IActionResult> AnswerAsync(HttpContext context, Func<HttpRequest, CancellationToken, Task<IActionResult>> function)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(function);
        try
        {
            return await function(context.Request, CancellationToken.None);
        }
        catch (Exception error) when (Problems.For(error, context.Response) is { } problem)
        {
            return problem;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await services.DisposeAsync();
        foreach (var container in owned)
        {
            await container.DeleteIfExistsAsync();
        }
        if (cacheFolder is not null && Directory.Exists(cacheFolder))
        {
            Directory.Delete(cacheFolder, recursive: true);
        }
    }
}
