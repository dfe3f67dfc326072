using Microsoft.AspNetCore.Http;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// What both HTTP classify routes do: check the query and headers, take a lease on the model's live version (or, during a
/// canary release, on the canary's when the image's bytes fall in its share), read the image, and answer the prediction,
/// with the activation map when <c>explain=true</c>.
/// </summary>
internal static class HttpClassification
{
    public static async Task<PredictionDocument> AnswerAsync(
        string model, HttpRequest request, ModelRegistry models, ImageRequestReader reader, ClassificationService classifier, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var query = ClassifyQuery.Parse(request.Query);
        reader.CheckHeaders(request);
        var live = await models.AcquireAsync(model, cancellationToken);
        ModelLease lease;
        ReadOnlyMemory<byte> image;
        try
        {
            image = await reader.ReadAsync(request, cancellationToken);
            // The image's bytes pick the version during a canary release (the same image always gets the same one).
            lease = await models.RouteAsync(model, live, image, cancellationToken);
        }
        catch
        {
            live.Dispose();
            throw;
        }
        using var held = lease;
        if (query.Explain)
        {
            return await ClassificationService.ExplainAsync(lease, image, query.Top, query.Threshold, cancellationToken);
        }
        var result = await classifier.ClassifyAsync(lease, image, query.Top, query.Threshold, cancellationToken);
        return PredictionDocument.ForResponse(result.Classification, result.ModelVersion);
    }
}
