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

    /// <summary>
    /// Images whose name leaves no room for <c>.json</c> (never classifiable) and items the caller passes over (the sweep's
    /// recent failures) take no place in the run's limit, so any number of them cannot keep it from the items after them.
    /// </summary>
    [Fact]
    public async Task NamesTooLongAndPassedOverItems_TakeNoPlaceInTheLimit()
    {
        var images = await TestStorage.CreateContainerAsync("images");
        var predictions = await TestStorage.CreateContainerAsync("predictions");
        try
        {
            var tooLong = Enumerable.Range(0, 3).Select(i => $"a{i}" + new string('n', 1020 - 6) + ".png").ToList();
            var longest = "b" + new string('n', 1019 - 5) + ".png"; // 1,019: its prediction's name is exactly 1,024
            foreach (var name in tooLong.Append(longest).Append("c0.png").Append("c1.png").Append("d.png"))
            {
                await images.UploadBlobAsync(name, BinaryData.FromString("x"));
            }
            var attempted = new List<string>();

            var report = await new PredictionBackfill(images, predictions).RunAsync(
                (name, _) =>
                {
                    lock (attempted)
                    {
                        attempted.Add(name);
                    }
                    return Task.FromResult(PredictionOutcome.Classified);
                },
                maxItems: 2,
                passOver: name => name.StartsWith('c'));

            Assert.Equal([longest, "d.png"], attempted.Order(StringComparer.Ordinal));
            Assert.Equal((2, 2, false), (report.Found, report.Classified, report.LimitReached));
            Assert.Equal((3, tooLong[0], 2), (report.NamesTooLong, report.FirstNameTooLong, report.PassedOver));
        }
        finally
        {
            await images.DeleteIfExistsAsync();
            await predictions.DeleteIfExistsAsync();
        }
    }
}
