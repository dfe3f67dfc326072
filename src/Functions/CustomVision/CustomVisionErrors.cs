using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.Functions.CustomVision;

/// <summary>The answers of the Custom Vision routes to the errors they let through: Custom Vision's <c>{code, message}</c> and its error codes.</summary>
public static class CustomVisionErrors
{
    public static ObjectResult? For(Exception error, HttpResponse response)
    {
        ArgumentNullException.ThrowIfNull(response);
        return error switch
        {
            CustomVisionException e => Create(e.StatusCode, e.Code, e.Message),
            ImageRejectedException e => Create(StatusCodes.Status400BadRequest, e.Code switch
            {
                ImageErrorCode.TooLarge => "BadRequestImageSizeBytes",
                ImageErrorCode.TooManyPixels or ImageErrorCode.ExtremeAspectRatio => "BadRequestImageDimensions",
                _ => "BadRequestImageFormat",
            }, e.Message),
            InvalidRequestException e => Create(e.StatusCode == StatusCodes.Status415UnsupportedMediaType ? StatusCodes.Status415UnsupportedMediaType : StatusCodes.Status400BadRequest,
                e.StatusCode switch
                {
                    StatusCodes.Status413PayloadTooLarge => "BadRequestImageSizeBytes",
                    StatusCodes.Status415UnsupportedMediaType => "UnsupportedMediaType",
                    _ => "BadRequestImageStream",
                }, e.Message),
            ModelUnavailableException e => Unavailable(e, response),
            ModelNotFoundException e => Create(StatusCodes.Status404NotFound, "NotFoundIteration", e.Message),
            _ => null,
        };
    }

    private static ObjectResult Unavailable(ModelUnavailableException error, HttpResponse response)
    {
        response.Headers.RetryAfter = Math.Ceiling(error.RetryAfter.TotalSeconds).ToString(CultureInfo.InvariantCulture);
        return Create(StatusCodes.Status503ServiceUnavailable, "ErrorPredictionServiceUnavailable", error.Message);
    }

    private static ObjectResult Create(int status, string code, string message)
    {
        var result = new ObjectResult(new CustomVisionError(code, message)) { StatusCode = status };
        result.ContentTypes.Add("application/json");
        return result;
    }
}
