using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Configuration;
using System.Globalization;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>
/// Storage settings under the names the Functions app and infra/ use: <c>ClassifierStorage</c> (a connection
/// string) or <c>ClassifierStorage__blobServiceUri</c> (+ <c>__credential=managedidentity</c>, <c>__clientId</c>),
/// and <c>Classifier__{Images,Predictions,Models,Training,Jobs,Features}Container</c>, <c>Classifier__ShardQueue</c>. Read from environment variables,
/// with <c>--storage</c> overriding the connection.
/// </summary>
public sealed class StorageSettings
{
    public const string ImagesDefault = ContainerDefaults.Images;
    public const string PredictionsDefault = ContainerDefaults.Predictions;
    public const string ModelsDefault = ContainerDefaults.Models;
    public const string TrainingDefault = ContainerDefaults.Training;

    private readonly Lazy<BlobServiceClient> service;

    public StorageSettings(IConfiguration configuration)
    {
        Configuration = configuration;
        service = new Lazy<BlobServiceClient>(() => StorageClients.CreateBlobServiceClient(configuration));
    }

    public IConfiguration Configuration { get; }

    public string ImagesContainer => Setting("ImagesContainer", ImagesDefault);

    public string PredictionsContainer => Setting("PredictionsContainer", PredictionsDefault);

    public string ModelsContainer => Setting("ModelsContainer", ModelsDefault);

    public string TrainingContainer => Setting("TrainingContainer", TrainingDefault);

    /// <summary>Named models' training data, <c>&lt;model&gt;/&lt;label&gt;/&lt;file&gt;</c> (<c>Classifier__NamedTrainingContainer</c>, the Functions app's setting).</summary>
    public string NamedTrainingContainer => Setting("NamedTrainingContainer", ReviewTrainingData.DefaultNamedContainer);

    /// <summary>Fanned-out jobs (<c>Classifier__JobsContainer</c>, the Functions app's setting).</summary>
    public string JobsContainer => Setting("JobsContainer", ContainerDefaults.Jobs);

    /// <summary>The queue the Functions app's <c>ClassifyShard</c> reads (<c>Classifier__ShardQueue</c>).</summary>
    public string ShardQueueName => Setting("ShardQueue", ContainerDefaults.ShardQueue);

    public JobStore Jobs() => new(Container(JobsContainer));

    /// <summary>Head-mode features kept between runs (<c>Classifier__FeaturesContainer</c>, <c>train --feature-cache</c>).</summary>
    public string FeaturesContainer => Setting("FeaturesContainer", ContainerDefaults.Features);

    public FeatureStore Features() => new(Container(FeaturesContainer));

    /// <summary>The shard queue on the same connection (identity-based in Azure: <c>ClassifierStorage__queueServiceUri</c>).</summary>
    public QueueClient ShardQueue() => StorageClients.CreateQueueServiceClient(Configuration).GetQueueClient(ShardQueueName);

    /// <summary>The review queue's settings: <c>Classifier__ReviewContainer</c>, <c>__ReviewMaxPerDay</c>, <c>__ReviewMarginBelow</c> (the Functions app's names).</summary>
    public ReviewSettings Review => new()
    {
        Container = Setting("ReviewContainer", ReviewSettings.DefaultContainer),
        MaxPerDay = int.TryParse(Setting("ReviewMaxPerDay", ""), NumberStyles.Integer, CultureInfo.InvariantCulture, out var max) && max >= 0 ? max : ReviewSettings.DefaultMaxPerDay,
        MarginBelow = double.TryParse(Setting("ReviewMarginBelow", ""), NumberStyles.Float, CultureInfo.InvariantCulture, out var margin) && margin is >= 0 and <= 1 ? margin : ReviewSettings.DefaultMarginBelow,
    };

    public ReviewQueue ReviewQueue() => new(Container(Review.Container), Review);

    /// <summary>Staged labels and their records, in the review queue's container.</summary>
    public ReviewLabels ReviewLabels() => new(Container(Review.Container));

    public BlobServiceClient Service => service.Value;

    public BlobContainerClient Container(string name) => Service.GetBlobContainerClient(name);

    public ModelStore ModelStore(string model = ModelNames.Default) => new(Container(ModelsContainer), model);

    /// <summary>Values that must never be printed.</summary>
    public IEnumerable<string?> Secrets => [Configuration[StorageClients.DefaultConnectionName]];

    public static IConfiguration BuildConfiguration(string? storageOption, IReadOnlyDictionary<string, string?>? overrides)
    {
        var builder = new ConfigurationBuilder().AddEnvironmentVariables();
        var values = new Dictionary<string, string?>(overrides ?? new Dictionary<string, string?>(), StringComparer.OrdinalIgnoreCase);
        if (!string.IsNullOrWhiteSpace(storageOption))
        {
            values[StorageClients.DefaultConnectionName] = storageOption;
        }
        return builder.AddInMemoryCollection(values).Build();
    }

    private string Setting(string name, string fallback) =>
        Configuration[$"{ContainerDefaults.SectionName}:{name}"] is { Length: > 0 } value ? value : fallback;
}
