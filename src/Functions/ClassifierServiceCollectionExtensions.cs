using Azure.Storage.Blobs;
using Microsoft.Extensions.Azure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions;

public static class ClassifierServiceCollectionExtensions
{
    /// <summary>
    /// Everything the functions use: validated options (<c>Classifier</c>, <c>Classifier:MicroBatching</c>), the
    /// blob client for the <c>ClassifierStorage</c> connection (a connection string locally, managed identity in
    /// Azure: <see cref="StorageClients"/>), and the singletons that hold the model and classify, and the background service that keeps the model current.
    /// </summary>
    public static IServiceCollection AddClassifierServices(this IServiceCollection services)
    {
        services.AddOptions<ClassifierOptions>().BindConfiguration(ClassifierOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => CustomVision.CustomVisionProjects.TryParse(o.CustomVisionProjects, out _), "Classifier:CustomVisionProjects must be <project id (a GUID)>=<model name> pairs separated by commas.")
            .ValidateOnStart();
        services.AddOptions<MicroBatchingOptions>().BindConfiguration(MicroBatchingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();

        services.AddAzureClients(clients => clients.AddClient<BlobServiceClient, BlobClientOptions>((clientOptions, provider) =>
            StorageClients.CreateBlobServiceClient(provider.GetRequiredService<IConfiguration>(), StorageClients.DefaultConnectionName, clientOptions)));
        services.AddSingleton(provider =>
        {
            var blobs = provider.GetRequiredService<BlobServiceClient>();
            var options = provider.GetRequiredService<IOptions<ClassifierOptions>>().Value;
            return new ClassifierContainers(
                blobs.GetBlobContainerClient(options.ImagesContainer),
                blobs.GetBlobContainerClient(options.PredictionsContainer),
                blobs.GetBlobContainerClient(options.ModelsContainer))
            {
                Training = blobs.GetBlobContainerClient(options.TrainingContainer),
                NamedTraining = blobs.GetBlobContainerClient(options.NamedTrainingContainer),
            };
        });
        services.AddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<ClassifierOptions>>().Value;
            return new ReviewQueue(provider.GetRequiredService<BlobServiceClient>().GetBlobContainerClient(options.ReviewContainer), options.ToReviewSettings());
        });
        services.AddSingleton(provider => new ReviewLabels(provider.GetRequiredService<ReviewQueue>().Container));
        services.AddSingleton<ReviewerIdentity>();
        services.AddSingleton(provider => new ModelStore(provider.GetRequiredService<ClassifierContainers>().Models));
        // Reads request bodies and blobs within the same limits the model pipelines enforce, and decodes for all of
        // them (HTTP, blob trigger, sweep, shards, thumbnails) within one process-wide decode budget.
        services.AddSingleton(provider => provider.GetRequiredService<IOptions<ClassifierOptions>>().Value.ToDecodeBudget());
        services.AddSingleton(provider => new ImageDecoder(
            provider.GetRequiredService<IOptions<ClassifierOptions>>().Value.ToImageLimits(), provider.GetRequiredService<DecodeBudget>()));
        services.AddSingleton(provider => new ThumbnailCache((long)provider.GetRequiredService<IOptions<ClassifierOptions>>().Value.ThumbnailCacheMegabytes << 20));

        services.AddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<ClassifierOptions>>().Value;
            var jobs = new JobStore(provider.GetRequiredService<BlobServiceClient>().GetBlobContainerClient(options.JobsContainer));
            return new ShardRunner(jobs, options.ShardMaxAttempts, options.ShardParallelism);
        });
        services.AddSingleton(provider =>
        {
            var options = provider.GetRequiredService<IOptions<ClassifierOptions>>().Value;
            var service = provider.GetRequiredService<BlobServiceClient>();
            return new FeatureShardWorker(new JobStore(service.GetBlobContainerClient(options.JobsContainer)), service,
                new FeatureStore(service.GetBlobContainerClient(options.FeaturesContainer)), options.ShardParallelism,
                provider.GetRequiredService<ImageDecoder>());
        });
        services.AddSingleton<ModelProvider>();
        services.AddSingleton<ModelRegistry>();
        services.AddSingleton<CustomVision.CustomVisionService>();
        services.AddSingleton<ClassificationBatcher>();
        services.AddSingleton<ClassificationService>();
        services.AddSingleton<ImageRequestReader>();
        services.AddSingleton<UploadedImageHandler>();
        services.AddSingleton<UnclassifiedImageSweeper>();
        services.AddSingleton<ReviewService>();
        services.AddHostedService<ModelRefreshService>();
        return services;
    }
}
