using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ServerlessClassifier.ModelCore.Jobs;

/// <summary>
/// The jobs container: <c>&lt;id&gt;/job.json</c> (<see cref="JobRecord"/>), <c>&lt;id&gt;/shards/&lt;n&gt;.json</c> (the
/// work, written before its message is enqueued), <c>&lt;id&gt;/done/&lt;n&gt;.json</c> (what the shard did, written once,
/// If-None-Match: *, its counts also as metadata) and <c>&lt;id&gt;/parked/&lt;n&gt;.json</c> (a shard that failed on every
/// delivery, with the reason). A job's status is two listings (done, parked), not a read per shard.
/// </summary>
public sealed class JobStore(BlobContainerClient container)
{
    public BlobContainerClient Container { get; } = container;

    public static string ShardName(int shard) => shard.ToString("D6", CultureInfo.InvariantCulture);

    public async Task CreateAsync(JobRecord job, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(job);
        await Container.CreateIfNotExistsAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        await WriteAsync($"{job.Id}/job.json", job, overwrite: false, metadata: null, cancellationToken).ConfigureAwait(false);
    }

    public Task UpdateAsync(JobRecord job, CancellationToken cancellationToken = default) =>
        WriteAsync($"{job.Id}/job.json", job, overwrite: true, metadata: null, cancellationToken);

    /// <summary>The job, or null when there is none of that id.</summary>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken = default)
    {
        if (!JobIds.IsValid(id))
        {
            throw new ArgumentException($"'{id}' is not a job id (letters, digits and '-').", nameof(id));
        }
        return await ReadAsync<JobRecord>($"{id}/job.json", cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Every job, oldest first (ids sort by start time).</summary>
    public async IAsyncEnumerable<JobRecord> ListAsync([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var ids = new List<string>();
        try
        {
            await foreach (var item in Container.GetBlobsByHierarchyAsync(BlobTraits.None, BlobStates.None, "/", prefix: null, cancellationToken).ConfigureAwait(false))
            {
                if (item.IsPrefix)
                {
                    ids.Add(item.Prefix.TrimEnd('/'));
                }
            }
        }
        catch (RequestFailedException e) when (e.ErrorCode == BlobErrorCode.ContainerNotFound)
        {
            yield break;
        }
        foreach (var id in ids.Where(JobIds.IsValid))
        {
            if (await ReadAsync<JobRecord>($"{id}/job.json", cancellationToken).ConfigureAwait(false) is { } job)
            {
                yield return job;
            }
        }
    }

    public Task WriteShardAsync(ShardWork work, CancellationToken cancellationToken = default) =>
        WriteAsync($"{work.Job}/shards/{ShardName(work.Shard)}.json", work, overwrite: true, metadata: null, cancellationToken);

    public Task<ShardWork?> ReadShardAsync(ShardMessage message, CancellationToken cancellationToken = default) =>
        ReadAsync<ShardWork>($"{message.Job}/shards/{ShardName(message.Shard)}.json", cancellationToken);

    /// <summary>True when the shard has a result (a listing, not a HEAD request: a 404 is the normal case and the SDK would log it).</summary>
    public async Task<bool> IsDoneAsync(ShardMessage message, CancellationToken cancellationToken = default)
    {
        var name = $"{message.Job}/done/{ShardName(message.Shard)}.json";
        await foreach (var page in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, name, cancellationToken).AsPages(pageSizeHint: 1).ConfigureAwait(false))
        {
            return page.Values.Any(b => b.Name == name);
        }
        return false;
    }

    /// <summary>Writes the shard's result unless one exists (a duplicate delivery finished first): false then.</summary>
    public async Task<bool> TryWriteResultAsync(ShardMessage message, ShardResult result, CancellationToken cancellationToken = default)
    {
        try
        {
            await WriteAsync($"{message.Job}/done/{ShardName(message.Shard)}.json", result, overwrite: false, ResultMetadata(result), cancellationToken).ConfigureAwait(false);
            return true;
        }
        catch (RequestFailedException e) when (e.Status == 409 || e.ErrorCode == BlobErrorCode.BlobAlreadyExists)
        {
            return false;
        }
    }

    public Task ParkAsync(ShardMessage message, ParkedShard parked, CancellationToken cancellationToken = default) =>
        WriteAsync($"{message.Job}/parked/{ShardName(message.Shard)}.json", parked, overwrite: true, metadata: null, cancellationToken);

    /// <summary>The job's progress: its record, the results summed from a listing of <c>done/</c>, and the parked shards not done since.</summary>
    public async Task<JobStatus?> GetStatusAsync(string id, CancellationToken cancellationToken = default)
    {
        if (await GetAsync(id, cancellationToken).ConfigureAwait(false) is not { } job)
        {
            return null;
        }
        var done = new HashSet<string>(StringComparer.Ordinal);
        var total = new ShardResult();
        await foreach (var item in Container.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, $"{id}/done/", cancellationToken).ConfigureAwait(false))
        {
            done.Add(Path.GetFileNameWithoutExtension(item.Name));
            var result = ResultFrom(item.Metadata);
            total = total with
            {
                Classified = total.Classified + result.Classified,
                Rejected = total.Rejected + result.Rejected,
                Current = total.Current + result.Current,
                Removed = total.Removed + result.Removed,
                Changed = total.Changed + result.Changed,
                Extracted = total.Extracted + result.Extracted,
            };
        }
        var parked = new List<ParkedShard>();
        await foreach (var item in Container.GetBlobsAsync(BlobTraits.None, BlobStates.None, $"{id}/parked/", cancellationToken).ConfigureAwait(false))
        {
            if (!done.Contains(Path.GetFileNameWithoutExtension(item.Name)) && await ReadAsync<ParkedShard>(item.Name, cancellationToken).ConfigureAwait(false) is { } shard)
            {
                parked.Add(shard);
            }
        }
        return new JobStatus(job, done.Count, total, parked);
    }

    private static Dictionary<string, string> ResultMetadata(ShardResult result) => new()
    {
        ["classified"] = Text(result.Classified),
        ["rejected"] = Text(result.Rejected),
        ["current"] = Text(result.Current),
        ["removed"] = Text(result.Removed),
        ["changed"] = Text(result.Changed),
        ["extracted"] = Text(result.Extracted),
    };

    private static ShardResult ResultFrom(IDictionary<string, string> metadata)
    {
        int Read(string key) => metadata.TryGetValue(key, out var value) && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0;
        return new ShardResult { Classified = Read("classified"), Rejected = Read("rejected"), Current = Read("current"), Removed = Read("removed"), Changed = Read("changed"), Extracted = Read("extracted") };
    }

    private static string Text(int value) => value.ToString(CultureInfo.InvariantCulture);

    private async Task WriteAsync<T>(string name, T value, bool overwrite, IDictionary<string, string>? metadata, CancellationToken cancellationToken)
    {
        var options = new BlobUploadOptions
        {
            HttpHeaders = new BlobHttpHeaders { ContentType = "application/json" },
            Metadata = metadata,
            Conditions = overwrite ? null : new BlobRequestConditions { IfNoneMatch = ETag.All },
        };
        await Container.GetBlobClient(name).UploadAsync(BinaryData.FromObjectAsJson(value, JobJson.Options), options, cancellationToken).ConfigureAwait(false);
    }

    private async Task<T?> ReadAsync<T>(string name, CancellationToken cancellationToken) where T : class
    {
        try
        {
            var content = await Container.GetBlobClient(name).DownloadContentAsync(cancellationToken).ConfigureAwait(false);
            return content.Value.Content.ToObjectFromJson<T>(JobJson.Options);
        }
        catch (RequestFailedException e) when (e.Status == 404)
        {
            return null;
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The job file '{name}' is not valid: {e.Message}", e);
        }
    }
}

/// <summary>A job's progress: shards done out of <see cref="JobRecord.Shards"/>, their summed results, and the parked ones.</summary>
public sealed record JobStatus(JobRecord Job, int ShardsDone, ShardResult Totals, IReadOnlyList<ParkedShard> Parked)
{
    /// <summary>Every shard is done or parked, and the listing is complete: nothing more will happen on its own.</summary>
    public bool Finished => Job.ListingComplete && ShardsDone + Parked.Count >= Job.Shards;
}
