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
public sealed class ClassifyImage(ModelRegistry models, ImageRequestReader reader, ClassificationService classifier)
{
    [Function(nameof(ClassifyImage))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/classify")] HttpRequest request,
        CancellationToken cancellationToken) =>
        new OkObjectResult(await HttpClassification.AnswerAsync(ModelNames.Default, request, models, reader, classifier, cancellationToken));
}
