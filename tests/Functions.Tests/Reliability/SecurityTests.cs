using System.Collections.Concurrent;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>
/// What a caller or a log reader must not get. That every HTTP function but Health needs a function key is
/// asserted on the generated functions.metadata by <see cref="AppShapeTests.FunctionsMetadata_DeclaresTheTriggersPathsConnectionsAndAuthLevels"/>.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class SecurityTests(ServingModelFixture model)
{
    [Fact]
    public async Task Logs_OfTriggerHttpSwapAndRefusedModel_ContainNoSecret()
    {
        var logs = new CapturingLoggerProvider();
        await using var host = await TestHost.StartAsync(logging: builder => builder.AddProvider(logs).SetMinimumLevel(LogLevel.Trace));
        await host.Store.PublishAsync(model.Folder, version: "v1");

        var name = await host.UploadAsync("secret-check.png", ServingModelFixture.Image("red", seed: 800, width: 48, height: 48));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
        var bad = await host.UploadAsync("secret-check.txt", "not an image"u8.ToArray());
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(bad), bad, CancellationToken.None);
        Assert.IsType<OkObjectResult>(await host.Function<ClassifyImage>().Run(TestHost.HttpContext(ServingModelFixture.Image("green", seed: 801)).Request, CancellationToken.None));

        await host.Store.PublishAsync(model.ReversedFolder, version: "v2");
        Assert.Equal("v2", (await host.ModelProvider.RefreshAsync())!.Version);
        await host.Store.PublishAsync(model.Folder, version: "v3");
        var weights = host.Models.GetBlobClient($"v3/{ColourModel.OnnxFileName}");
        await weights.UploadAsync(BinaryData.FromString("tampered"), overwrite: true);
        Assert.Equal("v2", (await host.ModelProvider.RefreshAsync())!.Version);
        Assert.Equal(1, host.ModelProvider.RefusedCount);

        var messages = logs.Messages.ToList();
        Assert.Contains(messages, m => m.Contains("v3", StringComparison.Ordinal)); // the refusal was logged, so the check saw it
        var key = TestStorage.ConnectionString.Split(';').Single(p => p.StartsWith("AccountKey=", StringComparison.Ordinal))["AccountKey=".Length..];
        foreach (var forbidden in new[] { "AccountKey", key, "SharedAccessSignature", "sig=", "Authorization: SharedKey" })
        {
            Assert.DoesNotContain(messages, m => m.Contains(forbidden, StringComparison.OrdinalIgnoreCase));
        }
    }

    [Theory]
    [InlineData("?maxBytes=999999999&maxPixels=999999999", "TooLarge")]
    [InlineData("?Classifier:MaxBytes=999999999&Classifier__MaxBytes=999999999&limits.maxBytes=999999999", "TooLarge")]
    [InlineData("?maxBytes=999999999&maxPixels=999999999", "TooManyPixels")]
    [InlineData("?MaxPixels=999999999&Classifier:MaxPixels=999999999", "TooManyPixels")]
    public async Task LimitsCannotBeRaisedByTheRequest(string query, string code)
    {
        var settings = code == "TooLarge"
            ? new Dictionary<string, string?> { ["Classifier:MaxBytes"] = "1000" }
            : new Dictionary<string, string?> { ["Classifier:MaxPixels"] = "1000" };
        await using var host = await TestHost.StartAsync(settings, await model.SharedModelsAsync());
        var image = ServingModelFixture.Image("red", seed: 802, width: 48, height: 48); // > 1000 bytes and > 1000 pixels
        var context = TestHost.HttpContext(image, query: query);
        foreach (var header in new[] { "X-Max-Bytes", "X-Max-Pixels", "Max-Bytes", "Classifier-MaxBytes", "Classifier-MaxPixels" })
        {
            context.Request.Headers[header] = "999999999";
        }

        var result = await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run);

        var objectResult = Assert.IsType<ObjectResult>(result);
        Assert.Equal(413, ((IStatusCodeActionResult)objectResult).StatusCode);
        Assert.Equal(code, Assert.IsType<ProblemDetails>(objectResult.Value).Extensions[Problems.CodeExtension]);
    }
}
