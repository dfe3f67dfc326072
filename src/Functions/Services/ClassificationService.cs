using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Services;

/// <summary>A request refused before classification: its HTTP status, a stable code and a message.</summary>
public sealed class InvalidRequestException(int statusCode, string code, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    public string Code { get; } = code;
}

/// <summary>A classification and the model version that made it.</summary>
public sealed record VersionedClassification(string ModelVersion, Classification Classification);

/// <summary>
/// The one way images are classified, for the HTTP function, the blob trigger and the sweep: a lease on the
/// live model, <see cref="ClassificationPipeline.PrepareAsync"/> on the caller's thread (decoding within the limits and
/// the process-wide decode budget, preprocessing), the forward pass through the <see cref="ClassificationBatcher"/>, then the caller's top-k
/// and threshold. Throws <c>ImageRejectedException</c> for bad input and
/// <see cref="ModelUnavailableException"/> when no model is live.
/// </summary>
public sealed class ClassificationService(ModelProvider models, ClassificationBatcher batcher)
{
    public const int DefaultTop = 5;

    public async Task<VersionedClassification> ClassifyAsync(ReadOnlyMemory<byte> image, int? top, double? threshold, CancellationToken cancellationToken)
    {
        using var lease = await models.AcquireAsync(cancellationToken).ConfigureAwait(false);
        return await ClassifyAsync(lease, image, top, threshold, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Classifies with a model the caller already holds (HTTP holds it from before reading the body).</summary>
    public async Task<VersionedClassification> ClassifyAsync(ModelLease lease, ReadOnlyMemory<byte> image, int? top, double? threshold, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var pipeline = lease.Pipeline;
        var labels = pipeline.Manifest.Labels.Count;
        CheckArguments(top, threshold, labels);
        var prepared = await pipeline.PrepareAsync(image, cancellationToken).ConfigureAwait(false);
        var full = await batcher.ClassifyAsync(lease.Model, prepared, cancellationToken).ConfigureAwait(false);
        var k = Math.Min(top ?? DefaultTop, labels);
        return new VersionedClassification(lease.Version, pipeline.IsMultiLabel
            ? Classification.DecideMultiLabel(full.Top, pipeline.LabelThresholds(threshold), k, full.Timings, full.OutOfDistribution)
            : Narrow(full, k, pipeline.ThresholdFor(full.Top[0].Label, threshold)));
    }

    /// <summary>
    /// Classifies with the activation map of the most probable class (<c>explain=true</c>): one forward pass of its own,
    /// outside the batcher, that also gives the map; the document carries it as <c>explanation</c>.
    /// </summary>
    public static async Task<PredictionDocument> ExplainAsync(ModelLease lease, ReadOnlyMemory<byte> image, int? top, double? threshold, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(lease);
        var pipeline = lease.Pipeline;
        var labels = pipeline.Manifest.Labels.Count;
        CheckArguments(top, threshold, labels);
        var prepared = await pipeline.PrepareAsync(image, cancellationToken).ConfigureAwait(false);
        var (classification, map) = pipeline.Explain(prepared, Math.Min(top ?? DefaultTop, labels), threshold);
        return PredictionDocument.ForResponse(classification, lease.Version) with { Explanation = pipeline.ExplanationFor(map, prepared) };
    }

    private static void CheckArguments(int? top, double? threshold, int labels)
    {
        if (top is { } k && (k < 1 || k > labels))
        {
            throw new InvalidRequestException(400, "InvalidTop", $"top must be between 1 and {labels} (the model's labels), not {k}.");
        }
        if (threshold is { } t && (t is < 0 or > 1 || double.IsNaN(t)))
        {
            throw new InvalidRequestException(400, "InvalidThreshold", $"threshold must be between 0 and 1, not {t}.");
        }
    }

    /// <summary>
    /// The caller's view of a full ranking: the first <paramref name="top"/> labels, and the decision under the
    /// caller's threshold (and the model's out-of-distribution score), exactly as
    /// <see cref="ClassificationPipeline.ClassifyPrepared"/> decides it.
    /// </summary>
    internal static Classification Narrow(Classification full, int top, double threshold) =>
        Classification.Decide([.. full.Top.Take(top)], threshold, full.Timings, full.OutOfDistribution);
}
