using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>The app's log messages: message templates, compiled once (no formatting when the level is off).</summary>
internal static partial class Log
{
    [LoggerMessage(1, LogLevel.Information, "Model version {Version} is live (was {Previous}); {Labels} labels, backbone {Backbone}")]
    public static partial void ModelLive(this ILogger logger, string version, string previous, int labels, string backbone);

    [LoggerMessage(9, LogLevel.Warning, "Model version {Version} serves an int8 graph with {Bits}-bit weights made for CPUs with 8-bit dot products (VNNI), but this CPU has none ({Cpu}) and the model has no graph for it: its integer sums can saturate, so its answers may differ from those its check measured; retrain with the default --int8-weight-bits auto (which packages a checked graph for such CPUs too) or 7 (right on any x86 CPU), or --precision fp32")]
    public static partial void Int8NeedsDotProduct(this ILogger logger, string version, int bits, string cpu);

    [LoggerMessage(16, LogLevel.Information, "Model {Model} version {Version} serves {File}, {Precision}: {Reason} ({Cpu})")]
    public static partial void ModelServedGraph(this ILogger logger, string model, string version, string file, string precision, string reason, string cpu);

    [LoggerMessage(2, LogLevel.Error, "Refused model version {Version}: {Reason}; {Live} stays live until another version is published")]
    public static partial void ModelRefused(this ILogger logger, Exception error, string version, string reason, string live);

    [LoggerMessage(3, LogLevel.Warning, "Checking for a new model failed; {Live} stays live")]
    public static partial void ModelCheckFailed(this ILogger logger, Exception error, string live);

    [LoggerMessage(5, LogLevel.Error, "The model refresh failed unexpectedly; the live model stays and the next check tries again")]
    public static partial void RefreshFailed(this ILogger logger, Exception error);

    [LoggerMessage(6, LogLevel.Information, "Model {Model} version {Version} unloaded (about {Megabytes} MB) to keep the loaded models within {BudgetMegabytes} MB; its next request loads it again")]
    public static partial void ModelUnloaded(this ILogger logger, string model, string version, long megabytes, long budgetMegabytes);

    [LoggerMessage(7, LogLevel.Warning, "Checking model {Model} for a new version failed; its loaded version stays live")]
    public static partial void NamedRefreshFailed(this ILogger logger, Exception error, string model);

    [LoggerMessage(8, LogLevel.Warning, "Model {Model}'s canary {Canary} cannot be served; its share stays on {Live}")]
    public static partial void CanaryUnavailable(this ILogger logger, Exception error, string model, string canary, string live);

    [LoggerMessage(11, LogLevel.Information, "Model {Model} version {Version}: graph {Outcome} the local model cache ({Path})")]
    public static partial void ModelCached(this ILogger logger, string model, string version, string outcome, string path);

    [LoggerMessage(12, LogLevel.Warning, "Model {Model} version {Version}: the cached graph did not match its manifest (size or SHA-256): it was deleted and downloaded again ({Path})")]
    public static partial void ModelCacheFileReplaced(this ILogger logger, string model, string version, string path);

    [LoggerMessage(42, LogLevel.Information, "Model {Model} version {Version}: session {Outcome}")]
    public static partial void ModelOptimizedGraph(this ILogger logger, string model, string version, string outcome);

    [LoggerMessage(14, LogLevel.Information, "Model {Model} version {Version}: started from the local model cache while current.json was read, and confirmed by the store's manifest ({Path})")]
    public static partial void ModelCachedStartConfirmed(this ILogger logger, string model, string version, string path);

    [LoggerMessage(15, LogLevel.Information, "Model {Model}: version {Started}, started from the local model cache, was discarded: {Reason}; loading {Version}")]
    public static partial void ModelCachedStartDiscarded(this ILogger logger, string model, string started, string reason, string version);

    [LoggerMessage(13, LogLevel.Warning, "Model {Model} version {Version}: the local model cache cannot be used ({Reason}); the model is downloaded into memory instead")]
    public static partial void ModelCacheUnusable(this ILogger logger, Exception error, string model, string version, string reason);

    [LoggerMessage(4, LogLevel.Information, "Checking for a new model every {Interval} in the background")]
    public static partial void RefreshStarted(this ILogger logger, TimeSpan interval);

    [LoggerMessage(10, LogLevel.Error, "A batch of {Count} images failed on model {Version}")]
    public static partial void BatchFailed(this ILogger logger, Exception error, int count, string version);

    [LoggerMessage(20, LogLevel.Warning, "Storage failed while classifying {Image} from {Source} (HTTP {Status}, {ErrorCode}); the host delivers it again (an upload: after poisonBlobThreshold failures it goes to the webjobs-blobtrigger-poison queue; a shard: on its last delivery it is parked)")]
    public static partial void ImageStorageFailed(this ILogger logger, Exception error, string image, string source, int status, string? errorCode);

    [LoggerMessage(22, LogLevel.Warning, "{Image} is left for the sweep: {Reason}")]
    public static partial void ImageLeftForSweep(this ILogger logger, string image, string reason);

    [LoggerMessage(23, LogLevel.Warning, "{Image} is never classified: its name has {Length} characters, and its prediction's (the name and .json) must stay within 1,024, so names may have at most {MaxLength}; rename it")]
    public static partial void ImageNameTooLong(this ILogger logger, string image, int length, int maxLength);

    [LoggerMessage(26, LogLevel.Information, "{Image}: {Outcome} via {Source}")]
    public static partial void ImageHandled(this ILogger logger, string image, PredictionOutcome outcome, string source);

    [LoggerMessage(30, LogLevel.Information, "Sweep skipped: no model is live yet")]
    public static partial void SweepSkipped(this ILogger logger);

    [LoggerMessage(31, LogLevel.Information, "Sweep: {Found} images lacked a current prediction or predictions their image (more remain: {LimitReached}); {Classified} classified, {Rejected} rejected, {AlreadyDone} already done, {Removed} removed, {Failed} failed; {PassedOver} that failed recently passed over")]
    public static partial void SweepDone(this ILogger logger, int found, bool limitReached, int classified, int rejected, int alreadyDone, int removed, int failed, int passedOver);

    [LoggerMessage(32, LogLevel.Warning, "Sweep: {Image} failed; the next sweeps pass over it for a while, then try it again")]
    public static partial void SweepItemFailed(this ILogger logger, Exception error, string image);

    [LoggerMessage(33, LogLevel.Warning, "Sweep: {Count} images have names too long for a prediction (over {MaxLength} characters; the first is {First}): they are never classified; rename them")]
    public static partial void SweepNamesTooLong(this ILogger logger, int count, int maxLength, string first);

    [LoggerMessage(40, LogLevel.Information, "Job {Job} shard {Shard}: {Outcome} (delivery {Delivery})")]
    public static partial void ShardHandled(this ILogger logger, string job, int shard, ModelCore.Jobs.ShardOutcome outcome, long delivery);

    [LoggerMessage(41, LogLevel.Error, "Queue message {MessageId} dropped: {Reason}")]
    public static partial void ShardMessageRefused(this ILogger logger, string messageId, string reason);
}
