using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>The backfill (the sweep's and trainjob's) goes on past an image that fails, and reports it.</summary>
public sealed class BackfillFailureTests
{
    [Fact]
    public async Task OneImageFailing_DoesNotEndTheRun_AndIsCountedAndReported()
    {
        var images = await TestStorage.CreateContainerAsync("images");
        var predictions = await TestStorage.CreateContainerAsync("predictions");
        try
        {
            foreach (var name in new[] { "a.png", "b.png", "c.png", "d.png" })
            {
                await images.UploadBlobAsync(name, BinaryData.FromString("x"));
            }
            var failures = new List<string>();
            var attempted = new List<string>();

            var report = await new PredictionBackfill(images, predictions).RunAsync(
                (name, _) =>
                {
                    lock (attempted)
                    {
                        attempted.Add(name);
                    }
                    return name == "b.png"
                        ? throw new Azure.RequestFailedException(500, "storage hiccup")
                        : Task.FromResult(PredictionOutcome.Classified);
                },
                parallelism: 2,
                failed: (name, error) =>
                {
                    lock (failures)
                    {
                        failures.Add($"{name}: {error.Message}");
                    }
                });

            Assert.Equal(["a.png", "b.png", "c.png", "d.png"], attempted.Order(StringComparer.Ordinal));
            Assert.Equal((4, 3, 1, false), (report.Found, report.Classified, report.Failed, report.LimitReached));
            Assert.Equal(["b.png: storage hiccup"], failures);
        }
        finally
        {
            await images.DeleteIfExistsAsync();
            await predictions.DeleteIfExistsAsync();
        }
    }
}
