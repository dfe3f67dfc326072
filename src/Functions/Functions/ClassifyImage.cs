using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>POST /api/classify[?top=k][&amp;threshold=x][&amp;explain=true]</c> with the image as the raw body or as the file of a
/// multipart form: 200 with the prediction (with <c>explain=true</c>, and its <c>explanation</c>: the activation map); 400 undecodable or bad parameters; 413 too large (refused before
/// the body is read when Content-Length says so); 415 not an image; 503 no model yet. The errors are thrown
/// (<see cref="InvalidRequestException"/>, <see cref="ImageRejectedException"/>, <see cref="ModelUnavailableException"/>)
/// and answered by <see cref="Middleware.HttpProblemsMiddleware"/>.
/// </summary>
public sealed class ClassifyImage(ModelProvider models, ModelRegistry registry, ImageRequestReader reader, ClassificationService classifier)
{
    [Function(nameof(ClassifyImage))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/classify")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var query = ClassifyQuery.Parse(request.Query);
        reader.CheckHeaders(request);
        ReadOnlyMemory<byte> image;
        var live = await models.AcquireAsync(cancellationToken);
        ModelLease lease;
        try
        {
            var body = await reader.ReadAsync(request, cancellationToken);
            // During a canary release the image's bytes pick the version (the same image always gets the same one).
            lease = await registry.RouteAsync(ModelNames.Default, live, body, cancellationToken);
            image = body;
        }
        catch
        {
            live.Dispose();
            throw;
        }
        using var held = lease;
        if (query.Explain)
        {
            return new OkObjectResult(await ClassificationService.ExplainAsync(lease, image, query.Top, query.Threshold, cancellationToken));
        }
        var result = await classifier.ClassifyAsync(lease, image, query.Top, query.Threshold, cancellationToken);
        return new OkObjectResult(PredictionDocument.ForResponse(result.Classification, result.ModelVersion));
    }
}
