using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>POST /api/classify/{model}[?top=k][&amp;threshold=x][&amp;explain=true]</c>: <see cref="ClassifyImage"/> with a named model
/// (<c>default</c> is the default model). 404 when no model of that name is published; otherwise the same answers,
/// and the body also names the model.
/// </summary>
public sealed class ClassifyWithModel(ModelRegistry models, ImageRequestReader reader, ClassificationService classifier)
{
    [Function(nameof(ClassifyWithModel))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/classify/{model}")] HttpRequest request,
        string model,
        CancellationToken cancellationToken)
    {
        var document = await HttpClassification.AnswerAsync(model, request, models, reader, classifier, cancellationToken);
        return new OkObjectResult(model == ModelNames.Default ? document : document with { Model = model });
    }
}
