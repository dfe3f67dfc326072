using Azure.Storage.Queues.Models;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Jobs;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// One shard of a fanned-out job: a message on <c>%Classifier:ShardQueue%</c> names a job and a shard. A classify
/// shard's images (<c>trainjob classify --container --distributed</c>) go through the blob trigger's handler
/// (<see cref="UploadedImageHandler"/>); a features shard's (<c>trainjob train --feature-cache --distributed</c>)
/// through the job's feature extractor into the feature store (<see cref="FeatureShardWorker"/>). The host scales this function out on the queue's length (Flex Consumption:
/// per function, up to the app's instance limit). A failure is thrown, so the host delivers the message again after
/// <c>visibilityTimeout</c> (host.json); the last allowed delivery parks the shard with its reason
/// (<see cref="ShardRunner"/>). A message that is not a shard message is logged and dropped: it can never succeed.
/// </summary>
public sealed class ClassifyShard(UploadedImageHandler handler, ShardRunner runner, FeatureShardWorker features, ClassifierContainers containers, ILogger<ClassifyShard> logger)
{
    public const string QueuePath = "%Classifier:ShardQueue%";

    [Function(nameof(ClassifyShard))]
    public async Task Run([QueueTrigger(QueuePath, Connection = "ClassifierStorage")] QueueMessage message, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(message);
        ShardMessage shard;
        try
        {
            shard = ShardMessage.Parse(message.MessageText);
        }
        catch (FormatException e)
        {
            logger.ShardMessageRefused(message.MessageId, e.Message);
            return;
        }
        var outcome = await runner.RunAsync(shard, message.DequeueCount, (work, token) => work.Kind == JobKinds.Features
            ? features.RunAsync(work, token)
            : runner.ClassifyAsync(work, (item, itemToken) => handler.HandleAsync(containers.Images.GetBlobClient(item.Name), item.Name, PredictionSource.Shard, itemToken), token),
            cancellationToken).ConfigureAwait(false);
        logger.ShardHandled(shard.Job, shard.Shard, outcome, message.DequeueCount);
    }
}
