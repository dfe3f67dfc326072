using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>GET /api/models</c>: the models published in the store (<c>default</c> first when it has anything), each with its
/// current version, the version this instance has loaded (null when not loaded here), and the current version's kind
/// and (multi-label) label thresholds, read from its manifest.
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
            var store = new ModelStore(containers.Models, name);
            string? version;
            try
            {
                version = (await store.GetCurrentAsync(cancellationToken))?.State.Version;
            }
            catch (ModelFormatException)
            {
                version = null; // an unreadable current.json: listed without a current version, as the provider refuses it
            }
            ModelManifest? manifest = null;
            try
            {
                manifest = version is null ? null : await store.GetManifestAsync(version, cancellationToken);
            }
            catch (ModelFormatException)
            {
                // an unreadable manifest: listed without a kind, as the provider refuses to load it
            }
            list.Add(new ModelListEntry(name, version, loaded.GetValueOrDefault(name),
                manifest is null ? null : ModelSummary.KindName(manifest.Kind), manifest is null ? null : ModelSummary.LabelThresholdsOf(manifest)));
        }
        return new OkObjectResult(new ModelList(list));
    }
}
