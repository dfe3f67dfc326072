using System.Text.Json;
using System.Text.Json.Serialization;

namespace ServerlessClassifier.ModelCore.Jobs;

/// <summary>
/// One fanned-out job (<c>jobs/&lt;id&gt;/job.json</c>): what it works on and how far its listing got. Written when
/// the job starts (<see cref="ListingComplete"/> false) and again when every shard is written and enqueued.
/// </summary>
public sealed record JobRecord
{
    [JsonPropertyName("id")] public required string Id { get; init; }

    /// <summary>What the shards do: <see cref="JobKinds.Classify"/> or <see cref="JobKinds.Features"/>.</summary>
    [JsonPropertyName("kind")] public required string Kind { get; init; }

    /// <summary>A features job's key in the feature store (the extractor is in <c>&lt;id&gt;/extractor/</c>); null for classify.</summary>
    [JsonPropertyName("featureKey")] public string? FeatureKey { get; init; }

    /// <summary>The images container the shards name blobs of.</summary>
    [JsonPropertyName("imagesContainer")] public required string ImagesContainer { get; init; }

    [JsonPropertyName("createdAt")] public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Most items per shard.</summary>
    [JsonPropertyName("shardSize")] public required int ShardSize { get; init; }

    /// <summary>Shards written and enqueued so far (all of them once <see cref="ListingComplete"/>).</summary>
    [JsonPropertyName("shards")] public int Shards { get; init; }

    /// <summary>Items (images to classify, predictions of deleted images to remove) in those shards.</summary>
    [JsonPropertyName("items")] public long Items { get; init; }

    /// <summary>True once the listing reached the end and every shard is on the queue.</summary>
    [JsonPropertyName("listingComplete")] public bool ListingComplete { get; init; }
}

/// <summary>The kinds of fanned-out job.</summary>
public static class JobKinds
{
    /// <summary>Classify images with the live model (<c>classify --container --distributed</c>).</summary>
    public const string Classify = "classify";

    /// <summary>Compute head-mode features of training images into the feature store (<c>train --feature-cache --distributed</c>).</summary>
    public const string Features = "features";
}

/// <summary>
/// One item of a shard: a blob name, whether the listing saw the image (false: only its prediction), and for a
/// features job the version (ETag) whose features are wanted.
/// </summary>
public sealed record ShardItem(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("imageExists")] bool ImageExists,
    [property: JsonPropertyName("version")] string? Version = null);

/// <summary>A shard's work (<c>jobs/&lt;id&gt;/shards/&lt;n&gt;.json</c>), written once before its message is enqueued.</summary>
public sealed record ShardWork(
    [property: JsonPropertyName("job")] string Job,
    [property: JsonPropertyName("shard")] int Shard,
    [property: JsonPropertyName("items")] IReadOnlyList<ShardItem> Items)
{
    /// <summary>The job's kind (<see cref="JobKinds"/>), so a consumer knows what to do without reading the job; classify when absent.</summary>
    [JsonPropertyName("kind")] public string Kind { get; init; } = JobKinds.Classify;
}

/// <summary>What one shard did (<c>jobs/&lt;id&gt;/done/&lt;n&gt;.json</c>, also as blob metadata so a listing sums a job).</summary>
public sealed record ShardResult
{
    [JsonPropertyName("classified")] public int Classified { get; init; }

    [JsonPropertyName("rejected")] public int Rejected { get; init; }

    /// <summary>Predictions that were current already (written by an earlier attempt, the blob trigger or another writer).</summary>
    [JsonPropertyName("current")] public int Current { get; init; }

    /// <summary>Predictions of deleted images that were removed.</summary>
    [JsonPropertyName("removed")] public int Removed { get; init; }

    /// <summary>Images deleted or overwritten since the listing (the newer version is classified on its own delivery).</summary>
    [JsonPropertyName("changed")] public int Changed { get; init; }

    /// <summary>A features job: images whose features were computed and stored.</summary>
    [JsonPropertyName("extracted")] public int Extracted { get; init; }

    /// <summary>The delivery that finished the shard (1 = the first).</summary>
    [JsonPropertyName("attempt")] public long Attempt { get; init; }

    [JsonPropertyName("seconds")] public double Seconds { get; init; }

    [JsonIgnore] public int Items => Classified + Rejected + Current + Removed + Changed + Extracted;
}

/// <summary>A shard that failed on every delivery (<c>jobs/&lt;id&gt;/parked/&lt;n&gt;.json</c>), with the reason of the last.</summary>
public sealed record ParkedShard(
    [property: JsonPropertyName("shard")] int Shard,
    [property: JsonPropertyName("attempts")] long Attempts,
    [property: JsonPropertyName("reason")] string Reason,
    [property: JsonPropertyName("parkedAt")] DateTimeOffset ParkedAt);

/// <summary>The queue message of one shard: which job and which shard; the work itself is in the shard's blob.</summary>
public sealed record ShardMessage(
    [property: JsonPropertyName("job")] string Job,
    [property: JsonPropertyName("shard")] int Shard)
{
    public string ToJson() => JsonSerializer.Serialize(this, JobJson.Options);

    /// <summary>Reads a message; <see cref="FormatException"/> naming what is wrong when it is not a shard message.</summary>
    public static ShardMessage Parse(string text)
    {
        ShardMessage? message;
        try
        {
            message = JsonSerializer.Deserialize<ShardMessage>(text, JobJson.Options);
        }
        catch (JsonException e)
        {
            throw new FormatException($"The queue message is not a shard message ({{\"job\": \"<id>\", \"shard\": <n>}}): {e.Message}", e);
        }
        if (message is null || !JobIds.IsValid(message.Job) || message.Shard < 0)
        {
            throw new FormatException("The queue message is not a shard message: it needs \"job\" (a job id) and \"shard\" (a number >= 0).");
        }
        return message;
    }
}

internal static class JobJson
{
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web) { WriteIndented = false };
}

/// <summary>Job ids: <c>yyyyMMdd-HHmmss-</c> and 6 hex digits, so a listing of <c>jobs/</c> is in start order.</summary>
public static class JobIds
{
    public static string New(DateTimeOffset now) =>
        $"{now.UtcDateTime:yyyyMMdd-HHmmss}-{Convert.ToHexStringLower(Guid.NewGuid().ToByteArray().AsSpan(0, 3))}";

    /// <summary>Letters, digits and '-' only, at most 64: an id never reaches outside <c>jobs/&lt;id&gt;/</c>.</summary>
    public static bool IsValid(string? id) =>
        id is { Length: > 0 and <= 64 } && id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');
}
