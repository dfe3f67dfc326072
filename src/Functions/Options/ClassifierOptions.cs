using System.ComponentModel.DataAnnotations;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Options;

/// <summary>
/// The <c>Classifier</c> configuration section (app settings <c>Classifier__*</c>; README "Configuration"
/// lists every key with its default). Limits are the app's: a request can narrow the answer (top, threshold)
/// but never raise <see cref="MaxBytes"/> or <see cref="MaxPixels"/>.
/// </summary>
public sealed record ClassifierOptions
{
    public const string SectionName = ContainerDefaults.SectionName;

    /// <summary>Uploads to classify; the blob trigger's path is <c>%Classifier:ImagesContainer%/{name}</c>.</summary>
    [Required, ContainerName]
    public string ImagesContainer { get; init; } = ContainerDefaults.Images;

    /// <summary>One <c>&lt;name&gt;.json</c> per image.</summary>
    [Required, ContainerName]
    public string PredictionsContainer { get; init; } = ContainerDefaults.Predictions;

    /// <summary>The model store (<c>&lt;version&gt;/...</c> and <c>current.json</c>).</summary>
    [Required, ContainerName]
    public string ModelsContainer { get; init; } = ContainerDefaults.Models;

    /// <summary>The labelled training data (<c>&lt;label&gt;/&lt;file&gt;</c>) that the review page adds confirmed uploads to.</summary>
    [Required, ContainerName]
    public string TrainingContainer { get; init; } = ContainerDefaults.Training;

    /// <summary>
    /// Named models' training data, one prefix per model (<c>&lt;model&gt;/&lt;label&gt;/&lt;file&gt;</c>): where the review page's
    /// approved labels of a named model's uploads go, never into <see cref="TrainingContainer"/> (docs/architecture.md, "Review labels per model").
    /// </summary>
    [Required, ContainerName]
    public string NamedTrainingContainer { get; init; } = ModelCore.Review.ReviewTrainingData.DefaultNamedContainer;

    /// <summary>The review queue: <c>items/&lt;image&gt;.json</c> per listed upload, <c>days/&lt;date&gt;.json</c> counters.</summary>
    [Required, ContainerName]
    public string ReviewContainer { get; init; } = ReviewSettings.DefaultContainer;

    /// <summary>Most uploads listed for review per UTC day; 0 turns the queue off.</summary>
    [Range(0, 1_000_000)]
    public int ReviewMaxPerDay { get; init; } = ReviewSettings.DefaultMaxPerDay;

    /// <summary>An upload whose top two probabilities differ by less than this is listed for review.</summary>
    [Range(0.0, 1.0)]
    public double ReviewMarginBelow { get; init; } = ReviewSettings.DefaultMarginBelow;

    /// <summary>
    /// Where the review API reads who is calling: <see cref="ReviewIdentitySource.EasyAuth"/> (App Service authentication's
    /// <c>x-ms-client-principal</c>; the default) or <see cref="ReviewIdentitySource.Development"/> (a fixed identity with
    /// both roles, for a local host; refused at start in Azure).
    /// </summary>
    public ReviewIdentitySource ReviewIdentity { get; init; } = ReviewIdentitySource.EasyAuth;

    /// <summary>Fanned-out jobs (<c>trainjob classify --container --distributed</c>): records, shard work, results.</summary>
    [Required, ContainerName]
    public string JobsContainer { get; init; } = ContainerDefaults.Jobs;

    /// <summary>Head-mode features that features shards (<c>trainjob train --feature-cache --distributed</c>) write.</summary>
    [Required, ContainerName]
    public string FeaturesContainer { get; init; } = ContainerDefaults.Features;

    /// <summary>
    /// The queue <c>ClassifyShard</c> reads shard messages from. The Functions host reads this setting itself (the
    /// trigger names <c>%Classifier:ShardQueue%</c>); it is bound here so that it is documented and validated.
    /// </summary>
    [Required, ContainerName]
    public string ShardQueue { get; init; } = ContainerDefaults.ShardQueue;

    /// <summary>
    /// The delivery of a shard message that parks the shard instead of failing it again. Keep it equal to host.json's
    /// <c>extensions.queues.maxDequeueCount</c> (5): the host moves a message to the poison queue after that many
    /// deliveries, so a larger value would never be reached.
    /// </summary>
    [Range(1, 100)]
    public int ShardMaxAttempts { get; init; } = ContainerDefaults.ShardMaxAttempts;

    /// <summary>Images of one shard classified at a time (they share forward passes through micro-batching).</summary>
    [Range(1, 64)]
    public int ShardParallelism { get; init; } = 4;

    /// <summary>Largest image accepted, in bytes (HTTP body or blob).</summary>
    [Range(typeof(long), "1", "2147483591")] // Array.MaxLength: the bytes are held in one array
    public long MaxBytes { get; init; } = ImageLimits.DefaultMaxBytes;

    /// <summary>Largest width x height accepted, read from the image header before decoding.</summary>
    [Range(typeof(long), "1", "9223372036854775807")]
    public long MaxPixels { get; init; } = ImageLimits.DefaultMaxPixels;

    /// <summary>
    /// The process-wide bound on decode memory, in MiB (<see cref="DecodeBudget"/>): the pixel buffers of all decodes
    /// in progress (HTTP, blob trigger, sweep, shards, thumbnails) together stay within it; more wait their turn.
    /// </summary>
    [Range(1, 65536)]
    public int DecodeBudgetMegabytes { get; init; } = (int)(DecodeBudget.DefaultMaxBytes >> 20);

    /// <summary>Memory for review thumbnails kept by an instance, in MiB (<see cref="ThumbnailCache"/>): each is made once per image version; 0 keeps none.</summary>
    [Range(0, 1024)]
    public int ThumbnailCacheMegabytes { get; init; } = 8;

    /// <summary>How often an instance checks <c>models/current.json</c>'s ETag for a newly published model.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan ModelRefreshInterval { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The memory an instance lets its loaded models hold, in megabytes (each counted as 6x the bytes of its serving files,
    /// <see cref="LoadedModel.EstimatedBytes"/>: an fp32 ResNet-18 about 270 MB, an int8 one about 75 MB): past it, the least recently used named models that no request holds are unloaded.
    /// The default model is never unloaded; 0 keeps only the named model used last.
    /// </summary>
    [Range(0, 1_000_000)]
    public int ModelMemoryBudgetMegabytes { get; init; } = 1024;

    /// <summary>
    /// The Custom Vision projects this app answers for (<see cref="CustomVisionProjects"/>):
    /// <c>&lt;project id&gt;=&lt;model name&gt;</c> pairs separated by commas or semicolons, e.g.
    /// <c>0f3c...-...=default,7a1b...-...=cats</c> (a setting value, because Linux app setting names cannot hold a GUID's dashes).
    /// </summary>
    public string? CustomVisionProjects { get; init; }

    /// <summary>
    /// The keys the Custom Vision routes accept in the <c>Prediction-Key</c> header, separated by commas (two during a
    /// rotation). A secret: in Azure a Key Vault reference. Unset, those routes refuse every call (401).
    /// </summary>
    public string? CustomVisionPredictionKeys { get; init; }

    /// <summary>
    /// NCRONTAB schedule of <c>SweepUnclassifiedImages</c>. The Functions host reads this setting itself
    /// (the trigger names <c>%Classifier:SweepSchedule%</c>); it is bound here so that it is documented and visible.
    /// </summary>
    [Required]
    public string SweepSchedule { get; init; } = "0 */5 * * * *";

    /// <summary>Most images one sweep classifies; the rest wait for the next run.</summary>
    [Range(1, 10_000)]
    public int SweepMaxImagesPerRun { get; init; } = 100;

    /// <summary>The sweep leaves younger images to the blob trigger, which is probably handling them right now.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "1.00:00:00")]
    public TimeSpan SweepMinImageAge { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>ONNX Runtime threads per forward pass; unset means ModelCore's default (cores, at most 2).</summary>
    [Range(1, 64)]
    public int? IntraOpThreads { get; init; }

    /// <summary>
    /// Whether the app fixes glibc's mmap threshold (ModelCore's <c>NativeHeap</c>) before it loads a model, so that the
    /// transient copies of the weights made while a session is created go back to the system (an fp32 ResNet-18 session
    /// holds about half the memory then: docs/benchmarks.md, "Serving memory with two ResNet-18 models loaded"). On by
    /// default; no effect outside glibc or when the environment sets <c>MALLOC_MMAP_THRESHOLD_</c>.
    /// </summary>
    public bool ReturnFreedModelMemory { get; init; } = true;

    /// <summary>
    /// The folder of the local model cache (ModelCore's <c>LocalModelCache</c>: served graphs kept on the instance's disk by
    /// model, version and SHA-256, so a restarted process reads its model from disk and ONNX Runtime loads it from a file);
    /// unset: <c>serverless-classifier-models</c> under the system's temporary folder.
    /// </summary>
    public string? ModelCacheDirectory { get; init; }

    /// <summary>
    /// The local model cache's budget: past it, the least recently used entries not used in the last ten minutes are
    /// deleted. 0 turns the cache off (models are downloaded into memory, and each session is created from that copy).
    /// </summary>
    [Range(0, 1 << 20)]
    public int ModelCacheMegabytes { get; init; } = 2048;

    /// <summary>
    /// Whether a starting process makes the version it served last ready from the local model cache (session created and
    /// warmed up) while it reads <c>current.json</c>, and serves it only once the store confirms that version and its manifest
    /// (ModelCore's <c>CachedStart</c>; docs/architecture.md, "Cold start"). Off by default: on a quiet 2-core machine against
    /// Azurite it started no sooner than the sequential start and spent about 0.1 s more CPU (docs/benchmarks.md); it can pay
    /// where the first storage request is slow. No effect with the cache off.
    /// </summary>
    public bool StartFromCachedModel { get; init; }

    /// <summary>ONNX Runtime threads across graph branches (ResNets are a chain: 1).</summary>
    [Range(1, 64)]
    public int InterOpThreads { get; init; } = 1;

    public ImageLimits ToImageLimits() => new() { MaxBytes = MaxBytes, MaxPixels = MaxPixels };

    public DecodeBudget ToDecodeBudget() => new((long)DecodeBudgetMegabytes << 20);

    public ReviewSettings ToReviewSettings() => new() { Container = ReviewContainer, MaxPerDay = ReviewMaxPerDay, MarginBelow = ReviewMarginBelow };
}

/// <summary>
/// The <c>Classifier:MicroBatching</c> section: concurrent classifications that arrive within
/// <see cref="MaxWaitMilliseconds"/> of each other share one forward pass, up to <see cref="MaxBatchSize"/> images.
/// </summary>
public sealed record MicroBatchingOptions
{
    public const string SectionName = "Classifier:MicroBatching";

    public bool Enabled { get; init; } = true;

    [Range(1, 256)]
    public int MaxBatchSize { get; init; } = 8;

    /// <summary>
    /// How long the first image of a batch waits for company; 0 (the default) batches only what is already
    /// queued: requests that arrive while a forward pass runs share the next one. Measured on 2 cores
    /// (docs/benchmarks.md): waiting 5 ms lost throughput at 1, 4 and 16 callers; not waiting gained 1.1-1.2x.
    /// </summary>
    [Range(0, 1000)]
    public int MaxWaitMilliseconds { get; init; }
}
