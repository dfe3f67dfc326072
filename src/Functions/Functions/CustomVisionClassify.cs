using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.CustomVision;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// Custom Vision's prediction API classify calls, v3.0 and v3.1:
/// <c>POST /customvision/{v3.0|v3.1}/prediction/{projectId}/classify/iterations/{publishedName}/{image|url}[/nostore]</c>
/// (<see cref="CustomVisionService"/>), at the app's root as Custom Vision's are (its clients drop any path of the
/// endpoint; host.json's routePrefix is empty and the other functions' routes carry <c>api/</c> themselves). Anonymous to the host, which reads keys only from <c>x-functions-key</c> or
/// <c>?code=</c>, never from Custom Vision's <c>Prediction-Key</c> header: the service checks that header itself. Errors
/// are Custom Vision's <c>{code, message}</c> (<see cref="CustomVisionErrors"/>, from the worker middleware).
/// Neither variant stores the image (Custom Vision keeps a stored variant's image for retraining; here, upload it to the
/// images container for that).
/// </summary>
public sealed class CustomVisionClassify(CustomVisionService service)
{
    [Function(nameof(CustomVisionClassify))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Anonymous, "post", Route = "customvision/{apiVersion}/prediction/{projectId}/classify/iterations/{publishedName}/{source}/{nostore?}")] HttpRequest request,
        string apiVersion,
        string projectId,
        string publishedName,
        string source,
        string? nostore,
        CancellationToken cancellationToken)
    {
        var prediction = await service.ClassifyAsync(request, apiVersion, projectId, publishedName, source, nostore, cancellationToken);
        return new OkObjectResult(prediction);
    }
}
