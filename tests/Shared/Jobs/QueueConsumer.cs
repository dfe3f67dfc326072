using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using ServerlessClassifier.ModelCore.Jobs;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// One consumer of the shard queue as the Functions host runs one, for tests and the fan-out benchmark that run
/// several without the host: receive a message with a visibility timeout, hand it to the function, delete it when the
/// function returns, leave it for redelivery when it throws <see cref="ShardFailedException"/>.
/// </summary>
public static class QueueConsumer
{
    /// <summary>Longer than a shard takes: the host renews a message's visibility while its function runs.</summary>
    public static readonly TimeSpan Visibility = TimeSpan.FromSeconds(60);

    /// <summary>Runs until the job is finished and the queue empty (or <paramref name="limit"/> passes); returns the deliveries it handled.</summary>
    public static async Task<int> RunAsync(QueueClient queue, Func<QueueMessage, CancellationToken, Task> function, JobStore jobs, string job, TimeSpan limit)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(function);
        ArgumentNullException.ThrowIfNull(jobs);
        var deliveries = 0;
        using var timeout = new CancellationTokenSource(limit);
        while (true)
        {
            var message = (await queue.ReceiveMessageAsync(Visibility, timeout.Token)).Value;
            if (message is null)
            {
                if ((await jobs.GetStatusAsync(job, timeout.Token))!.Finished && (await queue.GetPropertiesAsync(timeout.Token)).Value.ApproximateMessagesCount == 0)
                {
                    return deliveries;
                }
                await Task.Delay(100, timeout.Token);
                continue;
            }
            deliveries++;
            try
            {
                await function(message, timeout.Token);
                await queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, timeout.Token);
            }
            catch (ShardFailedException)
            {
                // Left on the queue: it comes back after the visibility timeout.
            }
        }
    }
}
