using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>POST /api/classify[?top=k][&amp;threshold=x][&amp;explain=true]</c> with the image as the raw body or as the file of a
/// multipart form: 200 with the prediction (with <c>explain=true</c>, and its <c>explanation</c>: the activation map); 400 undecodable or bad parameters; 413 too large (refused before
/// the body is read when Content-Length says so); 415 not an image; 503 no model yet. The errors are thrown
/// (<see cref="InvalidRequestException"/>, <see cref="ImageRejectedException"/>, <see cref="ModelUnavailableException"/>)
/// and answered by <see cref="Middleware.HttpProblemsMiddleware"/>.
/// </summary>
public sealed class ClassifyImage(ModelProvider models, ImageRequestReader reader, ClassificationService classifier)
{
    [Function(nameof(ClassifyImage))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "classify")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var query = ClassifyQuery.Parse(request.Query);
        reader.CheckHeaders(request);
        using var lease = await models.AcquireAsync(cancellationToken);
        var image = await reader.ReadAsync(request, cancellationToken);
        if (query.Explain)
        {
            return new OkObjectResult(await ClassificationService.ExplainAsync(lease, image, query.Top, query.Threshold, cancellationToken));
        }
        var result = await classifier.ClassifyAsync(lease, image, query.Top, query.Threshold, cancellationToken);
        return new OkObjectResult(PredictionDocument.ForResponse(result.Classification, result.ModelVersion));
    }
}
