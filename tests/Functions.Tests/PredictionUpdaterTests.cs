using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>The shared per-image rule: one classifier (one model version) decides and is named, refusals included.</summary>
public sealed class PredictionUpdaterTests
{
    [Fact]
    public async Task Rejection_NamesTheVersionThatRefusedIt_AndTheImageVersionItDescribes()
    {
        var images = await TestStorage.CreateContainerAsync("images");
        var predictions = await TestStorage.CreateContainerAsync("predictions");
        try
        {
            var image = images.GetBlobClient("refused.png");
            await image.UploadAsync(BinaryData.FromString("whatever"));
            var etag = (await image.GetPropertiesAsync()).Value.ETag;
            var classifier = new PredictionClassifier("v7", new ImageDecoder(),
                (_, _) => throw new ImageRejectedException(ImageErrorCode.Corrupt, "refused by v7"));

            var outcome = await PredictionUpdater.UpdateAsync(image, image.Name, predictions, classifier, PredictionSource.BlobTrigger);
            var again = await PredictionUpdater.UpdateAsync(image, image.Name, predictions, classifier, PredictionSource.EventGrid);

            Assert.Equal((PredictionOutcome.Rejected, PredictionOutcome.AlreadyDone), (outcome, again));
            var stored = PredictionDocument.Parse((await predictions.GetBlobClient("refused.png.json").DownloadContentAsync()).Value.Content.ToMemory().Span);
            Assert.Equal(("v7", "Corrupt", PredictionBlobs.VersionOf(etag)), (stored.ModelVersion, stored.Error!.Code, stored.ImageVersion));
        }
        finally
        {
            await images.DeleteIfExistsAsync();
            await predictions.DeleteIfExistsAsync();
        }
    }
}
