using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.Functions.Contracts;

/// <summary>
/// Error responses: RFC 9457 problem details (<c>application/problem+json</c>) with a stable <c>code</c>
/// extension (an <see cref="ImageErrorCode"/> name or a request error such as <c>InvalidTop</c>).
/// </summary>
public static class Problems
{
    public const string CodeExtension = "code";

    /// <summary>400, 413 or 415 for an image the decoder refused, by its code.</summary>
    public static int StatusFor(ImageErrorCode code) => code switch
    {
        ImageErrorCode.TooLarge or ImageErrorCode.TooManyPixels => StatusCodes.Status413PayloadTooLarge,
        ImageErrorCode.UnsupportedFormat or ImageErrorCode.UnsupportedFeature => StatusCodes.Status415UnsupportedMediaType,
        _ => StatusCodes.Status400BadRequest,
    };

    public static ObjectResult For(ImageRejectedException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return Create(StatusFor(error.Code), error.Code.ToString(), error.Message);
    }

    public static ObjectResult For(InvalidRequestException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return Create(error.StatusCode, error.Code, error.Message);
    }

    /// <summary>503 with <c>Retry-After</c>: no model is live yet (or the published one was refused).</summary>
    public static ObjectResult For(ModelUnavailableException error, HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(error);
        ArgumentNullException.ThrowIfNull(response);
        response.Headers.RetryAfter = Math.Ceiling(error.RetryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return Create(StatusCodes.Status503ServiceUnavailable, "NoModel", error.Message);
    }

    /// <summary>
    /// The answer to an exception an HTTP function let through (<see cref="Middleware.HttpProblemsMiddleware"/> asks,
    /// once for every HTTP function): the problem above for a refused request, a refused image or no model (which also
    /// sets <c>Retry-After</c> on <paramref name="response"/>); null for any other exception, which is not the caller's
    /// to read and stays the host's to answer (500 with an empty body).
    /// </summary>
    public static ObjectResult? For(Exception error, HttpResponse response) => error switch
    {
        InvalidRequestException e => For(e),
        ImageRejectedException e => For(e),
        ModelUnavailableException e => For(e, response),
        ModelNotFoundException e => Create(StatusCodes.Status404NotFound, "ModelNotFound", e.Message),
        _ => null,
    };

    public static ObjectResult Create(int status, string code, string detail)
    {
        var problem = new ProblemDetails
        {
            Status = status,
            Title = ReasonPhrases.GetReasonPhrase(status),
            Type = $"https://www.rfc-editor.org/rfc/rfc9110#status.{status}",
            Detail = detail,
            Extensions = { [CodeExtension] = code },
        };
        var result = new ObjectResult(problem) { StatusCode = status };
        result.ContentTypes.Add("application/problem+json");
        return result;
    }
}
