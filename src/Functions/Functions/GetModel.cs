using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;

namespace ServerlessClassifier.Functions.Functions;

/// <summary><c>GET /api/model</c>: the version this instance serves, its labels, kind, backbone, metrics and thresholds; 503 when none (<see cref="Middleware.HttpProblemsMiddleware"/>).</summary>
public sealed class GetModel(ModelProvider models)
{
    [Function(nameof(GetModel))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/model")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var lease = await models.AcquireAsync(cancellationToken);
        var manifest = lease.Model.Manifest;
        return new OkObjectResult(new ModelSummary(lease.Version, manifest.Labels, manifest.Backbone, manifest.Metrics,
            manifest.ConfidenceThreshold, manifest.Preprocessing.InputSize, manifest.CreatedUtc, lease.Model.LoadedUtc,
            manifest.Precision.ToString().ToLowerInvariant(), manifest.ClassThresholds?.Thresholds,
            ModelSummary.KindName(manifest.Kind), ModelSummary.LabelThresholdsOf(manifest)));
    }
}
