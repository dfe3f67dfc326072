using System.Collections.Immutable;
using System.Text.Json;
using Azure;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Middleware;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// The one mapping of HTTP functions' exceptions to answers (<see cref="Problems.For(Exception, HttpResponse)"/>) and
/// what of <see cref="HttpProblemsMiddleware"/> can run without the worker. That the middleware sets the answer as
/// the invocation's result, and that the ASP.NET Core integration writes it, is checked under the real Functions host
/// (EndToEnd: <c>Http_KeysAndStatusCodes_AreAsDocumented</c>, <c>NoModelEndToEndTests</c>): the worker's binding
/// feature that holds the result is internal to it.
/// </summary>
public sealed class HttpProblemsTests
{
    public static TheoryData<string, int, string, string> Mapped => new()
    {
        { "invalid-request-400", 400, "InvalidTop", "top must be a whole number" },
        { "invalid-request-413", 413, "TooLarge", "the body is 31457280 bytes" },
        { "invalid-request-415", 415, "UnsupportedMediaType", "Content-Type text/plain is not an image" },
        { "image-corrupt", 400, "Corrupt", "the PNG is truncated" },
        { "image-empty", 400, "Empty", "no bytes" },
        { "image-extreme-aspect-ratio", 400, "ExtremeAspectRatio", "1 x 60000" },
        { "image-too-large", 413, "TooLarge", "image is 400000 bytes, over the limit of 300000" },
        { "image-too-many-pixels", 413, "TooManyPixels", "120000 pixels" },
        { "image-unsupported-format", 415, "UnsupportedFormat", "not an image format" },
        { "image-unsupported-feature", 415, "UnsupportedFeature", "a TIFF compression" },
    };

    [Theory]
    [MemberData(nameof(Mapped))]
    public void RefusedRequestsAndImages_AreProblemsWithTheirStatusCodeAndDetail(string @case, int status, string code, string detail)
    {
        Exception error = @case.StartsWith("invalid-request", StringComparison.Ordinal)
            ? new InvalidRequestException(status, code, detail)
            : new ImageRejectedException(Enum.Parse<ImageErrorCode>(code), detail);
        var response = new DefaultHttpContext().Response;

        var answer = Problems.For(error, response);

        AssertProblem(answer, status, code, detail);
        Assert.Empty(response.Headers);
    }

    [Theory]
    [InlineData(30, "30")]
    [InlineData(2.2, "3")]
    [InlineData(1, "1")]
    public void NoModel_Is503NoModelWithRetryAfterInWholeSeconds(double retryAfterSeconds, string header)
    {
        var response = new DefaultHttpContext().Response;

        var answer = Problems.For(new ModelUnavailableException("No model is published yet.", TimeSpan.FromSeconds(retryAfterSeconds)), response);

        AssertProblem(answer, 503, "NoModel", "No model is published yet.");
        Assert.Equal(header, response.Headers.RetryAfter.ToString());
    }

    public static TheoryData<Exception> Unmapped => new()
    {
        new InvalidOperationException("No training container is configured."),
        new RequestFailedException(500, "Service request failed. Status: 500 http://127.0.0.1:10000/devstoreaccount1/review/items/x.json"),
        new JsonException("'n' is an invalid start of a value."),
        new OperationCanceledException(),
        new ArgumentException("image"),
    };

    [Theory]
    [MemberData(nameof(Unmapped))]
    public void OtherExceptions_AreNotAnswered_AndTheResponseIsLeftAlone(Exception error)
    {
        var response = new DefaultHttpContext().Response;

        Assert.Null(Problems.For(error, response));
        Assert.Empty(response.Headers);
        Assert.Equal(200, response.StatusCode);
    }

    [Theory]
    [InlineData("httpTrigger", true)]
    [InlineData("HttpTrigger", true)]
    [InlineData("blobTrigger", false)]
    [InlineData("queueTrigger", false)]
    [InlineData("timerTrigger", false)]
    public void Middleware_RunsForHttpTriggersOnly(string trigger, bool runs)
    {
        Assert.Equal(runs, HttpProblemsMiddleware.IsHttpTrigger(new StubFunctionContext(trigger)));
    }

    [Fact]
    public async Task Middleware_LetsAnExceptionItDoesNotAnswerThroughUnchanged()
    {
        var http = new DefaultHttpContext();
        var context = new StubFunctionContext("httpTrigger", http);
        Assert.Same(http, context.GetHttpContext()); // so that the middleware gets as far as asking Problems.For
        var error = new InvalidOperationException("not the caller's to read");

        var thrown = await Assert.ThrowsAsync<InvalidOperationException>(() => new HttpProblemsMiddleware().Invoke(context, _ => throw error));

        Assert.Same(error, thrown);
        Assert.Empty(http.Response.Headers);
    }

    [Fact]
    public async Task Middleware_WithoutAnHttpContext_AnswersNothing()
    {
        var context = new StubFunctionContext("queueTrigger");
        var error = new ModelUnavailableException("No model is published yet.", TimeSpan.FromSeconds(30));

        Assert.Same(error, await Assert.ThrowsAsync<ModelUnavailableException>(() => new HttpProblemsMiddleware().Invoke(context, _ => throw error)));
    }

    private static void AssertProblem(ObjectResult? answer, int status, string code, string detail)
    {
        Assert.NotNull(answer);
        Assert.Equal(status, ((IStatusCodeActionResult)answer).StatusCode);
        Assert.Equal(["application/problem+json"], answer.ContentTypes);
        var problem = Assert.IsType<ProblemDetails>(answer.Value);
        Assert.Equal(status, problem.Status);
        Assert.Equal(code, problem.Extensions[Problems.CodeExtension]);
        Assert.Equal(detail, problem.Detail);
        Assert.Equal($"https://www.rfc-editor.org/rfc/rfc9110#status.{status}", problem.Type);
        Assert.False(string.IsNullOrEmpty(problem.Title));
    }

    /// <summary>A function context with one trigger binding and, for HTTP, the request's HttpContext where the ASP.NET Core integration keeps it.</summary>
    private sealed class StubFunctionContext(string trigger, HttpContext? http = null) : FunctionContext
    {
        public override string InvocationId => "invocation";

        public override string FunctionId => "function";

        public override TraceContext TraceContext => throw new NotSupportedException();

        public override BindingContext BindingContext => throw new NotSupportedException();

        public override RetryContext RetryContext => throw new NotSupportedException();

        public override IServiceProvider InstanceServices { get; set; } = null!;

        public override FunctionDefinition FunctionDefinition { get; } = new StubDefinition(trigger);

        public override IDictionary<object, object> Items { get; set; } = http is null ? new Dictionary<object, object>() : new Dictionary<object, object> { ["HttpRequestContext"] = http };

        public override IInvocationFeatures Features => throw new NotSupportedException();
    }

    private sealed class StubDefinition(string trigger) : FunctionDefinition
    {
        public override ImmutableArray<FunctionParameter> Parameters => [];

        public override string PathToAssembly => "";

        public override string EntryPoint => "";

        public override string Id => "function";

        public override string Name => "Function";

        public override IImmutableDictionary<string, BindingMetadata> InputBindings { get; } =
            ImmutableDictionary<string, BindingMetadata>.Empty.Add("trigger", new StubBinding("trigger", trigger, BindingDirection.In));

        public override IImmutableDictionary<string, BindingMetadata> OutputBindings { get; } =
            ImmutableDictionary<string, BindingMetadata>.Empty.Add("$return", new StubBinding("$return", "http", BindingDirection.Out));
    }

    private sealed class StubBinding(string name, string type, BindingDirection direction) : BindingMetadata
    {
        public override string Name => name;

        public override string Type => type;

        public override BindingDirection Direction => direction;
    }
}
