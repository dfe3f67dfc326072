using System.CommandLine;
using System.Globalization;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;
using Spectre.Console;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// <c>classify --container --distributed</c> (started from <see cref="ClassifyCommand"/>) and <c>jobs status|list</c>:
/// a classification fanned out over the Functions app's <c>ClassifyShard</c> queue function (docs/architecture.md,
/// "Fan-out jobs").
/// </summary>
public static class JobCommands
{
    /// <summary>How often <c>--wait</c> reads the job's progress.</summary>
    private static readonly TimeSpan PollInterval = TimeSpan.FromSeconds(2);

    public static Command Create(GlobalOptions global, CliHost host)
    {
        var id = new Argument<string>("id") { Description = "The job id that classify --distributed printed (see jobs list)." };
        var status = new Command("status", "Show how far a fanned-out job is: shards done, images classified, parked shards and why.") { id };
        CliApp.Handle(status, global, host, async (parse, context, cancellationToken) =>
        {
            var job = await GetStatusAsync(context, parse.GetRequiredValue(id), cancellationToken);
            Print(context, job);
            return ExitCodes.Ok;
        });

        var list = new Command("list", "List the fanned-out jobs, oldest first, with their progress.");
        CliApp.Handle(list, global, host, async (_, context, cancellationToken) =>
        {
            var jobs = context.Storage.Jobs();
            var table = new Table().AddColumns("id", "created (UTC)", "container", "shards done", "parked", "items", "state");
            await foreach (var record in jobs.ListAsync(cancellationToken))
            {
                var job = (await jobs.GetStatusAsync(record.Id, cancellationToken))!;
                table.AddRow(Text(record.Id), Text(record.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)), Text(record.ImagesContainer),
                    Text($"{job.ShardsDone} / {record.Shards}"), Text(Number(job.Parked.Count)), Text(Number(record.Items)), Text(State(job)));
            }
            if (table.Rows.Count == 0)
            {
                context.WriteLine($"No job has been started in the '{context.Storage.JobsContainer}' container.");
                return ExitCodes.Ok;
            }
            context.Console.Write(table);
            return ExitCodes.Ok;
        });
        return new Command("jobs", "Follow classifications fanned out over the Functions app (classify --container --distributed).") { status, list };
    }

    /// <summary>
    /// Lists the container once and enqueues its shards; with <paramref name="wait"/>, follows the job until every
    /// shard is done or parked. Exit code 1 when a shard was parked.
    /// </summary>
    public static async Task<int> StartAsync(CliContext context, string imagesName, int shardSize, bool wait, CancellationToken cancellationToken)
    {
        var images = context.Storage.Container(imagesName);
        if (!(await images.ExistsAsync(cancellationToken)).Value)
        {
            throw new InvalidOperationException($"There is no container '{imagesName}' in the configured storage.");
        }
        if (await context.Storage.ModelStore().GetCurrentAsync(cancellationToken) is null)
        {
            throw new InvalidOperationException(
                $"No model is live in the '{context.Storage.ModelsContainer}' container: the Functions app classifies the shards with the live model. Publish one first (trainjob publish).");
        }
        var predictions = context.Storage.Container(context.Storage.PredictionsContainer);
        var queue = context.Storage.ShardQueue();
        var jobs = context.Storage.Jobs();
        var job = await ProgressDisplay.RunAsync(context, sink => new ShardPlanner(images, predictions, jobs, queue).StartAsync(shardSize,
            record => sink.Line($"listing: {record.Shards} shards ({record.Items} items) on the queue"), cancellationToken));
        context.WriteLine($"Job {job.Id}: {job.Items} items (images without a current prediction, predictions of deleted images) in {job.Shards} shards " +
            $"of at most {shardSize} on the queue '{queue.Name}'.");
        if (!wait)
        {
            context.WriteLine($"The Functions app's ClassifyShard works through them; follow it with: trainjob jobs status {job.Id}");
            return ExitCodes.Ok;
        }
        var status = await ProgressDisplay.RunAsync(context, sink => FollowAsync(jobs, job, sink, cancellationToken));
        Print(context, status);
        return status.Parked.Count == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }

    /// <summary>Reads the job's progress every <see cref="PollInterval"/> until every shard is done or parked.</summary>
    internal static async Task<JobStatus> FollowAsync(JobStore jobs, JobRecord job, IProgressSink sink, CancellationToken cancellationToken)
    {
        while (true)
        {
            var current = (await jobs.GetStatusAsync(job.Id, cancellationToken))!;
            sink.Report("shards", current.ShardsDone + current.Parked.Count, Math.Max(job.Shards, 1));
            if (current.Finished)
            {
                return current;
            }
            await Task.Delay(PollInterval, cancellationToken);
        }
    }

    /// <summary>
    /// <c>train --feature-cache --distributed</c>: queues a features job for the images the feature store lacks and
    /// follows it; what a parked shard left out, the training run computes itself.
    /// </summary>
    internal static FeatureFanOut FeatureFanOut(CliContext context, IProgressSink sink, string imagesName, int shardSize) => async (extractor, key, images, cancellationToken) =>
    {
        var prefix = imagesName + "/";
        var blobs = images.Select(i => i.Name.StartsWith(prefix, StringComparison.Ordinal)
            ? (i.Name[prefix.Length..], i.Version)
            : throw new InvalidOperationException($"{i.Name} is not in the container '{imagesName}' the job reads.")).ToList();
        var jobs = context.Storage.Jobs();
        var queue = context.Storage.ShardQueue();
        var job = await new FeatureJobPlanner(jobs, queue).StartAsync(imagesName, key, extractor, blobs, shardSize,
            record => sink.Line($"features job {record.Id}: {record.Shards} shards ({record.Items} images) on the queue"), cancellationToken);
        sink.Line($"Job {job.Id}: features of {job.Items} images in {job.Shards} shards of at most {shardSize} on the queue '{queue.Name}' (follow it with: trainjob jobs status {job.Id}).");
        var status = await FollowAsync(jobs, job, sink, cancellationToken);
        var totals = status.Totals;
        sink.Line($"Job {job.Id}: {totals.Extracted} images' features computed by the Functions app, {totals.Rejected} rejected, {totals.Changed} changed since the listing, " +
            $"{status.Parked.Count} shard(s) parked; the run computes whatever is still missing.");
        foreach (var parked in status.Parked.OrderBy(p => p.Shard))
        {
            context.Error($"Shard {parked.Shard} parked after {parked.Attempts} deliveries: {parked.Reason}");
        }
    };

    private static async Task<JobStatus> GetStatusAsync(CliContext context, string id, CancellationToken cancellationToken)
    {
        if (!JobIds.IsValid(id))
        {
            throw new UsageException($"\"{id}\" is not a job id (see trainjob jobs list).");
        }
        return await context.Storage.Jobs().GetStatusAsync(id, cancellationToken)
            ?? throw new InvalidOperationException($"There is no job {id} in the '{context.Storage.JobsContainer}' container (see trainjob jobs list).");
    }

    private static void Print(CliContext context, JobStatus status)
    {
        var job = status.Job;
        var totals = status.Totals;
        var waiting = job.Shards - status.ShardsDone - status.Parked.Count;
        context.WriteLine($"Job {job.Id} ({job.Kind} '{job.ImagesContainer}', started {job.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC): {State(status)}.");
        context.WriteLine($"Shards: {status.ShardsDone} of {job.Shards} done, {status.Parked.Count} parked, {waiting} waiting or running" +
            (job.ListingComplete ? "." : " (the listing did not finish: run classify --distributed again for the rest)."));
        context.WriteLine(job.Kind == JobKinds.Features
            ? $"Items: {totals.Extracted} images' features stored, {totals.Rejected} rejected, {totals.Changed} changed since the listing; {totals.Items} of {job.Items} in finished shards."
            : $"Items: {totals.Classified} classified, {totals.Rejected} rejected, {totals.Current} current already, " +
              $"{totals.Removed} predictions of deleted images removed, {totals.Changed} changed since the listing; {totals.Items} of {job.Items} in finished shards.");
        foreach (var parked in status.Parked.OrderBy(p => p.Shard))
        {
            context.Error($"Shard {parked.Shard} parked after {parked.Attempts} deliveries: {parked.Reason}");
        }
        if (status.Parked.Count > 0 && job.Kind == JobKinds.Classify)
        {
            context.Error($"Run `trainjob classify --container {job.ImagesContainer} --distributed` again once the cause is fixed: it queues only what is still missing.");
        }
    }

    private static string State(JobStatus status) => status switch
    {
        { Finished: true, Parked.Count: 0 } => "finished",
        { Finished: true } => "finished with parked shards",
        { Job.ListingComplete: false } => "listing",
        _ => "running",
    };

    private static string Number(long value) => value.ToString(CultureInfo.InvariantCulture);

    private static Text Text(string value) => new(value);
}
