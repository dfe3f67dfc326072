using Azure.Storage.Blobs;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// An image uploaded to <c>%Classifier:ImagesContainer%</c> gets <c>predictions/&lt;name&gt;.json</c>. Two entries,
/// one handler: the polling source (Azurite, Premium, Dedicated) and the Event Grid source (Flex Consumption, where
/// polling is not supported). The Flex Consumption package is built without the polling entry
/// (<c>dotnet publish -p:FlexConsumption=true</c> defines <c>FLEX_CONSUMPTION</c>, see Functions.csproj), so the
/// host there never sees it; locally <c>AzureWebJobs.ClassifyUploadedImageEventGrid.Disabled=true</c>
/// (local.settings.example.json) switches the Event Grid entry off, as Azurite sends no Event Grid events.
/// The blob is bound as a <see cref="BlobClient"/> so its size is checked before a byte is read.
/// </summary>
public sealed class ClassifyUploadedImage(UploadedImageHandler handler)
{
    public const string EventGridFunctionName = nameof(ClassifyUploadedImage) + "EventGrid";

    /// <summary>Blob path with the container from app settings.</summary>
    public const string BlobPath = "%Classifier:ImagesContainer%/{name}";

#if !FLEX_CONSUMPTION
    [Function(nameof(ClassifyUploadedImage))]
    public Task Run(
        [BlobTrigger(BlobPath, Connection = "ClassifierStorage")] BlobClient image,
        string name,
        CancellationToken cancellationToken) =>
        handler.HandleAsync(image, name, PredictionSource.BlobTrigger, cancellationToken);
#endif

    [Function(EventGridFunctionName)]
    public Task RunFromEventGrid(
        [BlobTrigger(BlobPath, Source = BlobTriggerSource.EventGrid, Connection = "ClassifierStorage")] BlobClient image,
        string name,
        CancellationToken cancellationToken) =>
        handler.HandleAsync(image, name, PredictionSource.EventGrid, cancellationToken);
}
