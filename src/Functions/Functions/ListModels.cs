using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>GET /api/models</c>: the models published in the store (<c>default</c> first when it has anything), each with its
/// current version and the version this instance has loaded (null when not loaded here).
/// </summary>
public sealed class ListModels(ModelRegistry models, ClassifierContainers containers)
{
    [Function(nameof(ListModels))]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/models")] HttpRequest request,
        CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var names = await ModelStore.ListModelsAsync(containers.Models, cancellationToken);
        var loaded = models.Loaded.ToDictionary(m => m.Name, m => m.LoadedVersion, StringComparer.Ordinal);
        loaded[ModelNames.Default] = models.Default.Current?.Version;
        var list = new List<ModelListEntry>();
        foreach (var name in names)
        {
            string? version;
            try
            {
                version = (await new ModelStore(containers.Models, name).GetCurrentAsync(cancellationToken))?.State.Version;
            }
            catch (ModelCore.Checkpoints.ModelFormatException)
            {
                version = null; // an unreadable current.json: listed without a current version, as the provider refuses it
            }
            list.Add(new ModelListEntry(name, version, loaded.GetValueOrDefault(name)));
        }
        return new OkObjectResult(new ModelList(list));
    }
}
