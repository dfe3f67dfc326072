using ServerlessClassifier.ModelCore.Inference;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Blobs.Specialized;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Functions;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>Blob names and declared content types chosen to mislead: the prediction lands where it belongs, the bytes decide.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class HostileInputTests(ServingModelFixture model)
{
    public static TheoryData<string> HostileNames => new()
    {
        "日本/猫 ü.png",
        "with spaces/a  b c .png",
        "percent%2F..%2Fencoded.png",
        "query?x=1#fragment.png",
        "long/" + string.Join('/', Enumerable.Range(0, 10).Select(i => new string((char)('a' + i), 98))) + "x.png",
    };

    [Theory]
    [MemberData(nameof(HostileNames))]
    public async Task HostileBlobName_GetsItsPredictionUnderExactlyTheSameNameAndNothingElse(string name)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        await host.UploadAsync(name, ServingModelFixture.Image("blue", seed: 700, width: 48, height: 48));
        var stored = await ListAsync(host.Images);
        // Storage keeps the name as given (no dot-segment folding on the way in), so the trigger sees the same name.
        Assert.Equal([name], stored);

        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var predictions = await Predictions.ReadAllAsync(host.Predictions);
        var (written, prediction) = Assert.Single(predictions);
        Assert.Equal(name + ".json", written);
        Assert.Equal(("ok", "blue"), (prediction.Status(), prediction.Label()));
        Assert.Equal(name, prediction.GetProperty("image").GetString());
        Assert.Equal([name], await ListAsync(host.Images));
    }

    /// <summary>
    /// Dot segments never reach storage as such: the client folds them as any URL path (<c>photos/../a.png</c> is
    /// stored as <c>a.png</c>), so the trigger reports the folded name and the prediction follows it.
    /// </summary>
    [Theory]
    [InlineData("./dot/./segment.png", "dot/segment.png")]
    [InlineData("photos/../folded.png", "folded.png")]
    public async Task DotSegmentName_IsStoredFolded_AndThePredictionFollowsTheStoredName(string name, string stored)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        await host.UploadAsync(name, ServingModelFixture.Image("blue", seed: 704, width: 48, height: 48));
        Assert.Equal([stored], await ListAsync(host.Images));

        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(stored), stored, CancellationToken.None);

        var (written, prediction) = Assert.Single(await Predictions.ReadAllAsync(host.Predictions));
        Assert.Equal(stored + ".json", written);
        Assert.Equal("blue", prediction.Label());
    }

    /// <summary>
    /// A name that climbs out of the container cannot be uploaded (storage answers 400 InvalidResourceName), and an
    /// invocation handed such a name anyway writes nothing anywhere: it fails (the host retries, then the poison queue).
    /// </summary>
    [Theory]
    [InlineData("../escape.png")]
    [InlineData("photos/../../escape.png")]
    [InlineData("../../devstoreaccount1/escape.png")]
    public async Task NameClimbingOutOfTheContainer_IsRefusedAndWritesNothing(string name)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var image = ServingModelFixture.Image("blue", seed: 705, width: 48, height: 48);
        var upload = await Assert.ThrowsAsync<RequestFailedException>(() => host.UploadAsync(name, image));
        Assert.Equal(400, upload.Status);

        await Assert.ThrowsAnyAsync<RequestFailedException>(() =>
            host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None));

        Assert.Empty(await Predictions.ReadAllAsync(host.Predictions));
        Assert.Empty(await ListAsync(host.Images));
        var account = host.Images.GetParentBlobServiceClient();
        await foreach (var container in account.GetBlobContainersAsync(prefix: "escape"))
        {
            Assert.Fail($"container {container.Name} was created");
        }
    }

    [Fact]
    public async Task ThousandCharacterName_GetsItsPrediction()
    {
        var name = "deep/" + new string('n', 991) + ".png";
        Assert.Equal(1000, name.Length);
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        await host.UploadAsync(name, ServingModelFixture.Image("green", seed: 701, width: 48, height: 48));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var (written, prediction) = Assert.Single(await Predictions.ReadAllAsync(host.Predictions));
        Assert.Equal(name + ".json", written);
        Assert.Equal("green", prediction.Label());
    }

    [Theory]
    [InlineData("png-as-text-plain", "text/plain", "ok", "red")]
    [InlineData("png-as-jpeg", "image/jpeg", "ok", "red")]
    [InlineData("text-as-jpeg", "image/jpeg", "rejected", "UnsupportedFormat")]
    [InlineData("text-as-png", "image/png", "rejected", "UnsupportedFormat")]
    public async Task BlobWithALyingContentType_IsJudgedByItsBytes(string name, string contentType, string status, string labelOrCode)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var bytes = name.StartsWith("png", StringComparison.Ordinal)
            ? ServingModelFixture.Image("red", seed: 702, width: 48, height: 48)
            : "plain text pretending to be an image"u8.ToArray();
        await host.Images.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(bytes), new BlobUploadOptions { HttpHeaders = new BlobHttpHeaders { ContentType = contentType } });

        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);

        var prediction = await Predictions.ReadAsync(host.Predictions, PredictionDocument.BlobNameFor(name));
        Assert.Equal(status, prediction.Status());
        Assert.Equal(labelOrCode, status == "ok" ? prediction.Label() : prediction.ErrorCode());
    }

    /// <summary>
    /// Over HTTP the Content-Type is a coarse gate only (an image type, octet-stream or multipart, else 415
    /// UnsupportedMediaType, ClassifyHttpTests); past it the decoder sniffs the bytes, so a wrong image type does not matter.
    /// </summary>
    [Theory]
    [InlineData("png-as-jpeg", "image/jpeg", 200, "red")]
    [InlineData("png-as-gif", "image/gif", 200, "red")]
    [InlineData("png-as-octet-stream", "application/octet-stream", 200, "red")]
    [InlineData("text-as-jpeg", "image/jpeg", 415, "UnsupportedFormat")]
    [InlineData("png-as-text-plain", "text/plain", 415, "UnsupportedMediaType")]
    public async Task HttpBodyWithALyingContentType_IsJudgedByItsBytes(string @case, string contentType, int status, string labelOrCode)
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var bytes = @case.StartsWith("png", StringComparison.Ordinal)
            ? ServingModelFixture.Image("red", seed: 703, width: 48, height: 48)
            : "plain text pretending to be a JPEG"u8.ToArray();

        var result = await TestHost.AnswerAsync(TestHost.HttpContext(bytes, contentType), host.Function<ClassifyImage>().Run);

        var objectResult = Assert.IsAssignableFrom<ObjectResult>(result);
        Assert.Equal(status, ((IStatusCodeActionResult)objectResult).StatusCode ?? 200);
        if (status == 200)
        {
            Assert.Equal(labelOrCode, System.Text.Json.JsonSerializer.SerializeToElement(objectResult.Value, objectResult.Value!.GetType()).Label());
        }
        else
        {
            Assert.Equal(labelOrCode, Assert.IsType<ProblemDetails>(objectResult.Value).Extensions[Problems.CodeExtension]);
        }
    }

    private static async Task<List<string>> ListAsync(BlobContainerClient container)
    {
        var names = new List<string>();
        await foreach (var blob in container.GetBlobsAsync())
        {
            names.Add(blob.Name);
        }
        return names;
    }
}
