using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// <c>GET /api/ui</c> (function key, as the HTTP API): one static page, "Try it" (classify a picked or dropped image:
/// top labels with bars, the version, the out-of-distribution verdict) and "Review" (the queued uploads as
/// thumbnails; one click confirms the suggested label or picks another). Open it once as <c>/api/ui?code=&lt;key&gt;</c>:
/// its script sends that key with every call it makes. No framework, no external resource (its
/// Content-Security-Policy allows none).
/// </summary>
public sealed class WebPage
{
    private static readonly Lazy<string> Html = new(() =>
    {
        using var stream = typeof(WebPage).Assembly.GetManifestResourceStream("ServerlessClassifier.Functions.Web.index.html")
            ?? throw new InvalidOperationException("The page is not embedded in the assembly.");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    });

    [Function(nameof(WebPage))]
    public IActionResult Run([HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/ui")] HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var headers = request.HttpContext.Response.Headers;
        headers.ContentSecurityPolicy = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        headers.CacheControl = "no-store";
        return new ContentResult { Content = Html.Value, ContentType = "text/html; charset=utf-8", StatusCode = StatusCodes.Status200OK };
    }
}
