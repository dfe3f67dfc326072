namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Default container names of the settings contract <c>Classifier__{Images,Predictions,Models,Training}Container</c>,
/// shared by the Functions app and TrainJob (infra/ deploys the same names).
/// </summary>
public static class ContainerDefaults
{
    /// <summary>The configuration section the container settings live in.</summary>
    public const string SectionName = "Classifier";

    public const string Images = "images";
    public const string Predictions = "predictions";
    public const string Models = "models";
    public const string Training = "training";

    /// <summary>Fanned-out jobs' records, shard work and results (<c>&lt;job&gt;/...</c>).</summary>
    public const string Jobs = "jobs";

    /// <summary>Head-mode features kept between training runs (<c>&lt;key&gt;/&lt;file&gt;.safetensors</c>, <c>train --feature-cache</c>).</summary>
    public const string Features = "features";

    /// <summary>The storage queue of shard messages that the Functions app's <c>ClassifyShard</c> consumes.</summary>
    public const string ShardQueue = "classify-shards";

    /// <summary>Deliveries of a shard message before the shard is parked; host.json's <c>extensions.queues.maxDequeueCount</c> is the same.</summary>
    public const int ShardMaxAttempts = 5;
}
