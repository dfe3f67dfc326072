using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Concurrent classifications of 12-megapixel uploads through the app's own services share the process-wide decode
/// budget (<c>Classifier:DecodeBudgetMegabytes</c>); measured through the budget's counters, never by timing.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class DecodeBudgetServingTests(ServingModelFixture model)
{
    [Fact]
    public async Task Concurrent12MegapixelClassifications_StayWithinTheConfiguredBudget_AndAllComplete()
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:DecodeBudgetMegabytes"] = "64" }, await model.SharedModelsAsync());
        var service = host.Get<ClassificationService>();
        var budget = host.Get<DecodeBudget>();
        Assert.Equal(64L << 20, budget.MaxBytes);
        await service.ClassifyAsync(ServingModelFixture.Image("red", seed: 1), top: 1, threshold: null, CancellationToken.None); // model loaded
        var png = Red(4000, 3000, png: true);   // 84 MB of pixels: over the whole budget, so each decodes alone
        var jpeg = Red(4000, 3000, png: false); // decoded at reduced scale
        var images = Enumerable.Range(0, 8).Select(i => i % 2 == 0 ? png : jpeg).ToList();
        var (grants, waited) = (budget.Grants, budget.Waited);

        // The rest of the process holds the whole budget while the classifications start, so each of them must wait.
        var others = budget.Acquire(budget.MaxBytes);
        var classifications = images.Select(image => Task.Run(() => service.ClassifyAsync(image, top: 1, threshold: null, CancellationToken.None))).ToList();
        Assert.True(SpinWait.SpinUntil(() => budget.Waiting == images.Count, TimeSpan.FromMinutes(2)), $"{budget.Waiting} of {images.Count} decodes waiting"); // a guard against a hang, not a timing
        others.Dispose();
        var results = await Task.WhenAll(classifications);

        Assert.All(results, r => Assert.Equal("red", r.Classification.Top[0].Label));
        Assert.True(budget.PeakBytes <= budget.MaxBytes, $"peak {budget.PeakBytes} bytes charged at once, over the {budget.MaxBytes}-byte budget");
        Assert.Equal(grants + images.Count + 1, budget.Grants);
        Assert.Equal(waited + images.Count, budget.Waited);
        Assert.Equal(0, budget.InUseBytes);
    }

    private static byte[] Red(int width, int height, bool png)
    {
        using var image = new Image<Rgb24>(width, height, new Rgb24(220, 30, 30));
        using var stream = new MemoryStream();
        if (png)
        {
            image.SaveAsPng(stream);
        }
        else
        {
            image.SaveAsJpeg(stream);
        }
        return stream.ToArray();
    }
}
