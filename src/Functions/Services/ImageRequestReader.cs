using System.Globalization;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.Functions.Services;

/// <summary>The query of <c>POST /api/classify</c>.</summary>
public sealed record ClassifyQuery(int? Top, double? Threshold)
{
    /// <summary><c>?explain=true</c>: answer with the activation map too (<c>explanation</c>).</summary>
    public bool Explain { get; init; }

    /// <summary>Parses <c>?top=k</c> and <c>?threshold=x</c> (invariant culture); the range of top is checked against the model's labels later.</summary>
    public static ClassifyQuery Parse(IQueryCollection query)
    {
        ArgumentNullException.ThrowIfNull(query);
        int? top = null;
        double? threshold = null;
        if (query.TryGetValue("top", out var topText))
        {
            top = int.TryParse(topText, NumberStyles.Integer, CultureInfo.InvariantCulture, out var k) && k >= 1
                ? k
                : throw new InvalidRequestException(StatusCodes.Status400BadRequest, "InvalidTop", $"top must be a whole number from 1 to the model's label count, not \"{topText}\".");
        }
        if (query.TryGetValue("threshold", out var thresholdText))
        {
            threshold = double.TryParse(thresholdText, NumberStyles.Float, CultureInfo.InvariantCulture, out var t) && t is >= 0 and <= 1
                ? t
                : throw new InvalidRequestException(StatusCodes.Status400BadRequest, "InvalidThreshold", $"threshold must be a number from 0 to 1, not \"{thresholdText}\".");
        }
        var explain = false;
        if (query.TryGetValue("explain", out var explainText))
        {
            explain = bool.TryParse(explainText, out var e)
                ? e
                : throw new InvalidRequestException(StatusCodes.Status400BadRequest, "InvalidExplain", $"explain must be true or false, not \"{explainText}\".");
        }
        return new ClassifyQuery(top, threshold) { Explain = explain };
    }
}

/// <summary>
/// Gets the image out of a classify request without ever holding more than <see cref="ImageLimits.MaxBytes"/>
/// + 1 bytes of it: a declared Content-Length over the limit is refused before anything is read, and the body
/// (raw, or the first file of a multipart form, streamed section by section, never buffered as a form) is read
/// through <see cref="ImageDecoder.ReadAllBytesAsync"/>, which stops one byte past the limit.
/// </summary>
public sealed class ImageRequestReader(ImageDecoder decoder)
{
    /// <summary>Room for the multipart boundaries and part headers around a file of the maximum size.</summary>
    public const long MultipartOverheadBytes = 64 * 1024;

    public long MaxBytes => decoder.Limits.MaxBytes;

    /// <summary>Checks Content-Type (415) and Content-Length (413) without reading the body.</summary>
    public void CheckHeaders(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        var multipart = IsMultipart(request);
        if (!multipart && !IsImageType(request.ContentType))
        {
            throw UnsupportedType(request.ContentType);
        }
        var limit = multipart ? MaxBytes + MultipartOverheadBytes : MaxBytes;
        if (request.ContentLength > limit)
        {
            throw new InvalidRequestException(StatusCodes.Status413PayloadTooLarge, nameof(ImageErrorCode.TooLarge),
                $"the body is {request.ContentLength} bytes; images are accepted up to {MaxBytes} bytes");
        }
    }

    /// <summary>
    /// The image bytes; throws <see cref="ImageRejectedException"/> (TooLarge) past the limit. Of a multipart form, the
    /// first file part, or the first part named <paramref name="field"/> whether or not it names a file (Custom Vision's
    /// clients send <c>imageData</c> without a file name).
    /// </summary>
    public async Task<ReadOnlyMemory<byte>> ReadAsync(HttpRequest request, CancellationToken cancellationToken, string? field = null)
    {
        CheckHeaders(request);
        if (!IsMultipart(request))
        {
            return await decoder.ReadAllBytesAsync(request.Body, cancellationToken).ConfigureAwait(false);
        }
        var boundary = MediaTypeHeaderValue.TryParse(request.ContentType, out var mediaType)
            ? HeaderUtilities.RemoveQuotes(mediaType.Boundary).Value
            : null;
        if (string.IsNullOrEmpty(boundary))
        {
            throw new InvalidRequestException(StatusCodes.Status400BadRequest, "MalformedMultipart", "the multipart/form-data Content-Type has no boundary");
        }
        var reader = new MultipartReader(boundary, request.Body);
        try
        {
            while (await reader.ReadNextSectionAsync(cancellationToken).ConfigureAwait(false) is { } section)
            {
                if (!ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                    || !(disposition.IsFileDisposition() || (field is not null && HeaderUtilities.RemoveQuotes(disposition.Name).Equals(field, StringComparison.Ordinal))))
                {
                    continue;
                }
                if (!IsImageType(section.ContentType))
                {
                    throw UnsupportedType(section.ContentType);
                }
                return await decoder.ReadAllBytesAsync(section.Body, cancellationToken).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            throw new InvalidRequestException(StatusCodes.Status400BadRequest, "MalformedMultipart", $"the multipart body could not be read: {e.Message}");
        }
        throw new InvalidRequestException(StatusCodes.Status400BadRequest, "NoFile", "the multipart form has no file part; send the image as a file field (or as the raw body)");
    }

    private static bool IsMultipart(HttpRequest request) =>
        request.ContentType?.StartsWith("multipart/form-data", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>No type, <c>application/octet-stream</c> or any <c>image/*</c>; the decoder decides from the bytes.</summary>
    private static bool IsImageType(string? contentType)
    {
        if (string.IsNullOrWhiteSpace(contentType))
        {
            return true;
        }
        if (!MediaTypeHeaderValue.TryParse(contentType, out var mediaType))
        {
            return false;
        }
        return mediaType.MediaType.Equals("application/octet-stream", StringComparison.OrdinalIgnoreCase)
            || mediaType.Type.Equals("image", StringComparison.OrdinalIgnoreCase);
    }

    private static InvalidRequestException UnsupportedType(string? contentType) =>
        new(StatusCodes.Status415UnsupportedMediaType, "UnsupportedMediaType",
            $"Content-Type {contentType} is not an image; send image/*, application/octet-stream or multipart/form-data with one file");
}
