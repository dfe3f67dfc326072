using System.Net.Http.Headers;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Inference;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Functions.Tests;

[Collection(FunctionsTests.Collection)]
public sealed class ClassifyHttpTests(ServingModelFixture model)
{
    [Fact]
    public async Task Classify_RawBody_Returns200WithTheLabelAndTopK()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var context = TestHost.HttpContext(ServingModelFixture.Image("green", seed: 21), query: "?top=2");
        var result = await host.Function<ClassifyImage>().Run(context.Request, CancellationToken.None);

        var prediction = Assert.IsType<PredictionDocument>(Assert.IsType<OkObjectResult>(result).Value);
        Assert.Equal("ok", prediction.Status);
        Assert.Equal("green", prediction.Label);
        Assert.Equal("v1", prediction.ModelVersion);
        Assert.Equal(2, prediction.Top!.Count);
        Assert.Equal(0.5, prediction.Threshold);
        Assert.Null(prediction.Image);
        Assert.Null(prediction.Source);
    }

    [Fact]
    public async Task Classify_ThresholdAboveTheConfidence_AnswersUnknown()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var context = TestHost.HttpContext(ServingModelFixture.Image("red", seed: 22), contentType: "application/octet-stream", query: "?threshold=1");
        var prediction = (PredictionDocument)((OkObjectResult)await host.Function<ClassifyImage>().Run(context.Request, CancellationToken.None)).Value!;
        Assert.Equal("unknown", prediction.Label);
        Assert.True(prediction.IsUnknown);
        Assert.Equal("red", prediction.Top![0].Label);
    }

    [Fact]
    public async Task Classify_ModelWithClassThresholds_AppliesTheTopClasssOwn_AndARequestThresholdReplacesThemAll()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.ClassThresholdFolder, version: "v1");
        var function = host.Function<ClassifyImage>();
        async Task<PredictionDocument> Classify(string colour, string query = "") =>
            (PredictionDocument)((OkObjectResult)await function.Run(TestHost.HttpContext(ServingModelFixture.Image(colour, seed: 24), query: query).Request, CancellationToken.None)).Value!;

        // Red's own threshold (0.999) is above its confidence (about 0.997): unknown. Green keeps the single 0.5.
        var red = await Classify("red");
        Assert.Equal(("unknown", "red", 0.999, UnknownReasons.LowConfidence), (red.Label, red.Top![0].Label, red.Threshold!.Value, red.UnknownReason));
        var green = await Classify("green");
        Assert.Equal(("green", 0.5), (green.Label, green.Threshold!.Value));
        var redAtHalf = await Classify("red", "?threshold=0.5");
        Assert.Equal(("red", 0.5), (redAtHalf.Label, redAtHalf.Threshold!.Value));
        var explained = await Classify("red", "?explain=true");
        Assert.Equal(("unknown", 0.999), (explained.Label, explained.Threshold!.Value));

        var summary = (ModelSummary)((OkObjectResult)await host.Function<GetModel>().Run(new DefaultHttpContext().Request, CancellationToken.None)).Value!;
        Assert.Equal(new Dictionary<string, double> { ["red"] = 0.999 }, summary.ClassThresholds);
        Assert.Equal(("multiClass", null), (summary.Kind, summary.LabelThresholds));
    }

    [Fact]
    public async Task Classify_MultipartFormWithOneFile_Returns200()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        using var form = new MultipartFormDataContent { { new StringContent("a note"), "comment" } };
        var file = new ByteArrayContent(ServingModelFixture.Image("blue", seed: 23));
        file.Headers.ContentType = new MediaTypeHeaderValue("image/png");
        form.Add(file, "file", "blue.png");
        var body = await form.ReadAsByteArrayAsync();
        var context = TestHost.HttpContext(body, contentType: form.Headers.ContentType!.ToString());

        var prediction = (PredictionDocument)((OkObjectResult)await host.Function<ClassifyImage>().Run(context.Request, CancellationToken.None)).Value!;
        Assert.Equal("blue", prediction.Label);
    }

    [Fact]
    public async Task ClassifyExplain_AnswersTheMapOfThePredictedClass_PeakingWhereTheColourIs()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        // Grey, with a red square in the bottom-left quadrant: red wins, and the map says where.
        using var image = new Image<Rgb24>(64, 64, new Rgb24(128, 128, 128));
        for (var y = 36; y < 60; y++)
        {
            for (var x = 4; x < 28; x++)
            {
                image[x, y] = new Rgb24(230, 20, 20);
            }
        }
        using var png = new MemoryStream();
        await image.SaveAsPngAsync(png);
        var context = TestHost.HttpContext(png.ToArray(), query: "?explain=true&top=3");

        var prediction = (PredictionDocument)((OkObjectResult)await host.Function<ClassifyImage>().Run(context.Request, CancellationToken.None)).Value!;

        Assert.Equal("red", prediction.Top![0].Label);
        var explanation = prediction.Explanation!;
        Assert.Null(explanation.Unavailable);
        Assert.Equal("red", explanation.Label);
        var grid = explanation.Grid!;
        Assert.Equal(8, grid.Length);
        var peak = grid.SelectMany((row, r) => row.Select((v, c) => (v, r, c))).MaxBy(x => x.v);
        Assert.True(peak.r >= 4 && peak.c < 4, $"the map peaks at row {peak.r}, column {peak.c}, outside the bottom-left quadrant");
        // Exact: the grid averages to log p(red) minus the mean log probability.
        var logs = prediction.Top!.Select(t => Math.Log(t.Probability)).ToList();
        Assert.Equal(logs[0] - logs.Average(), grid.SelectMany(r => r).Average(), 3);
        using var overlay = SixLabors.ImageSharp.Image.Load<Rgb24>(Convert.FromBase64String(explanation.OverlayJpeg!));
        Assert.Equal(64, overlay.Width);
        // The overlay is warm over the square, grey elsewhere (a JPEG: a margin for its rounding).
        Assert.True(overlay[16, 48].R > overlay[48, 16].R + 40, $"overlay {overlay[16, 48]} over the square, {overlay[48, 16]} away from it");
    }

    [Fact]
    public async Task Classify_WithoutExplain_HasNoExplanation()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var context = TestHost.HttpContext(ServingModelFixture.Image("green", seed: 28), query: "?explain=false");
        var prediction = (PredictionDocument)((OkObjectResult)await host.Function<ClassifyImage>().Run(context.Request, CancellationToken.None)).Value!;
        Assert.Equal("green", prediction.Label);
        Assert.Null(prediction.Explanation);
    }

    public static TheoryData<string, int, string> BadRequests => new()
    {
        { "corrupt", 400, "Corrupt" },
        { "empty", 400, "Empty" },
        { "extreme-aspect-ratio", 400, "ExtremeAspectRatio" },
        { "top-zero", 400, "InvalidTop" },
        { "top-above-labels", 400, "InvalidTop" },
        { "top-not-a-number", 400, "InvalidTop" },
        { "threshold-above-one", 400, "InvalidThreshold" },
        { "explain-not-a-boolean", 400, "InvalidExplain" },
        { "multipart-without-file", 400, "NoFile" },
        { "content-length-over-limit", 413, "TooLarge" },
        { "too-many-pixels", 413, "TooManyPixels" },
        { "text-bytes-as-image", 415, "UnsupportedFormat" },
        { "json-content-type", 415, "UnsupportedMediaType" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Classify_AnswersBadInputWithItsStatusAndCode(string @case, int status, string code)
    {
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MaxPixels"] = "100000" }, await model.SharedModelsAsync());
        var png = ServingModelFixture.Image("red", seed: 24);
        var context = @case switch
        {
            "corrupt" => TestHost.HttpContext(png[..(png.Length / 2)]),
            "empty" => TestHost.HttpContext([]),
            "extreme-aspect-ratio" => TestHost.HttpContext(ServingModelFixture.Image("red", seed: 25, width: 1, height: 60_000)),
            "top-zero" => TestHost.HttpContext(png, query: "?top=0"),
            "top-above-labels" => TestHost.HttpContext(png, query: "?top=4"),
            "top-not-a-number" => TestHost.HttpContext(png, query: "?top=many"),
            "threshold-above-one" => TestHost.HttpContext(png, query: "?threshold=1.5"),
            "explain-not-a-boolean" => TestHost.HttpContext(png, query: "?explain=please"),
            "multipart-without-file" => MultipartWithoutFile(),
            "content-length-over-limit" => WithContentLength(TestHost.HttpContext(png), 30L * 1024 * 1024),
            "too-many-pixels" => TestHost.HttpContext(ServingModelFixture.Image("red", seed: 26, width: 400, height: 300)),
            "text-bytes-as-image" => TestHost.HttpContext("hello, not an image"u8.ToArray()),
            "json-content-type" => TestHost.HttpContext("{}"u8.ToArray(), contentType: "application/json"),
            _ => throw new ArgumentOutOfRangeException(nameof(@case)),
        };

        var result = await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run);

        AssertProblem(result, status, code);
    }

    [Fact]
    public async Task Classify_EndlessBodyWithoutContentLength_Is413AfterReadingOneBytePastTheLimit()
    {
        const int maxBytes = 256 * 1024;
        await using var host = await TestHost.StartAsync(new Dictionary<string, string?> { ["Classifier:MaxBytes"] = $"{maxBytes}" }, await model.SharedModelsAsync());
        var body = new CountingStream(1L << 30);
        var context = TestHost.HttpContext(contentType: "application/octet-stream");
        context.Request.Body = body;

        var result = await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run);

        AssertProblem(result, 413, "TooLarge");
        Assert.Equal(maxBytes + 1, body.BytesRead);
    }

    [Fact]
    public async Task Classify_DeclaredContentLengthOverTheLimit_Is413WithoutReadingTheBody()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var body = new CountingStream(1L << 30);
        var context = TestHost.HttpContext(contentType: "image/jpeg");
        context.Request.Body = body;
        context.Request.ContentLength = 1L << 30;

        AssertProblem(await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run), 413, "TooLarge");
        Assert.Equal(0, body.BytesRead);
    }

    [Fact]
    public async Task ClassifyAndModel_BeforeAnyModelIsPublished_Are503WithRetryAfter()
    {
        await using var host = await TestHost.StartAsync();
        var context = TestHost.HttpContext(ServingModelFixture.Image("red", seed: 27));
        AssertProblem(await TestHost.AnswerAsync(context, host.Function<ClassifyImage>().Run), 503, "NoModel");
        Assert.Equal("30", context.Response.Headers.RetryAfter.ToString());

        var modelContext = new DefaultHttpContext();
        AssertProblem(await TestHost.AnswerAsync(modelContext, host.Function<GetModel>().Run), 503, "NoModel");
        Assert.Equal("30", modelContext.Response.Headers.RetryAfter.ToString());
    }

    [Fact]
    public async Task Model_DescribesTheLiveVersion()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var result = await host.Function<GetModel>().Run(new DefaultHttpContext().Request, CancellationToken.None);
        var summary = Assert.IsType<ModelSummary>(Assert.IsType<OkObjectResult>(result).Value);
        Assert.Equal("v1", summary.Version);
        Assert.Equal(ServingModelFixture.Labels, summary.Labels);
        Assert.Equal("colour-means", summary.Backbone);
        Assert.Equal(0.5, summary.Threshold);
        Assert.Equal(1, summary.Metrics!.Accuracy);
        Assert.Equal(64, summary.InputSize);
        Assert.Null(summary.ClassThresholds);
    }

    [Fact]
    public void Health_IsOk()
    {
        var result = new Health().Run(new DefaultHttpContext().Request);
        Assert.Equal(200, Assert.IsType<OkObjectResult>(result).StatusCode);
    }

    private static void AssertProblem(IActionResult result, int status, string code)
    {
        var objectResult = Assert.IsType<ObjectResult>(result);
        Assert.Equal(status, ((IStatusCodeActionResult)objectResult).StatusCode);
        var problem = Assert.IsType<ProblemDetails>(objectResult.Value);
        Assert.Equal(status, problem.Status);
        Assert.Equal(code, problem.Extensions[Problems.CodeExtension]);
        Assert.False(string.IsNullOrWhiteSpace(problem.Detail));
        Assert.Contains("application/problem+json", objectResult.ContentTypes);
    }

    private static DefaultHttpContext WithContentLength(DefaultHttpContext context, long length)
    {
        context.Request.ContentLength = length;
        return context;
    }

    private static DefaultHttpContext MultipartWithoutFile()
    {
        using var form = new MultipartFormDataContent { { new StringContent("no file here"), "comment" } };
        var body = form.ReadAsByteArrayAsync().GetAwaiter().GetResult();
        return TestHost.HttpContext(body, contentType: form.Headers.ContentType!.ToString());
    }

    /// <summary>A body of <paramref name="length"/> zero bytes that is produced as it is read, counting what was read.</summary>
    private sealed class CountingStream(long length) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => BytesRead; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = (int)Math.Min(count, length - BytesRead);
            Array.Clear(buffer, offset, n);
            BytesRead += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
