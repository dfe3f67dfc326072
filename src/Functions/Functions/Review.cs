using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// The review page's API (function key): <c>GET /api/review</c> lists the queued uploads (at most 100) with the live
/// model's labels; <c>GET /api/review/thumbnail?image=&lt;name&gt;</c> is a small JPEG of a queued image;
/// <c>POST /api/review/label</c> with <c>{ "image", "imageVersion", "label" }</c> adds the image to the training
/// container under that label (<c>"label": null</c> discards it) and removes it from the queue, as
/// <c>trainjob review import</c> does: 200 <c>{ outcome, label }</c>, 400 a bad label or body, 409 not queued
/// (any more) in that version. An image the decoder refuses (<see cref="ImageRejectedException"/>) is answered 400,
/// 413 or 415 as classify answers it, by <see cref="Middleware.HttpProblemsMiddleware"/>.
/// </summary>
public sealed class Review(ReviewService review)
{
    [Function("ListReview")]
    public async Task<IActionResult> List(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "review")] HttpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        return new OkObjectResult(await review.ListAsync(cancellationToken));
    }

    [Function("ReviewThumbnail")]
    public async Task<IActionResult> Thumbnail(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "review/thumbnail")] HttpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        var image = request.Query["image"].ToString();
        if (string.IsNullOrEmpty(image))
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "NoImage", "Name the queued image: ?image=<name>.");
        }
        return await review.ThumbnailAsync(image, cancellationToken) is { } jpeg
            ? new FileContentResult(jpeg, "image/jpeg")
            : Problems.Create(StatusCodes.Status404NotFound, "NotQueued", "That image is not in the review queue (any more).");
    }

    [Function("LabelReview")]
    public async Task<IActionResult> Label(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "review/label")] HttpRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        LabelRequest? body;
        try
        {
            body = await JsonSerializer.DeserializeAsync<LabelRequest>(request.Body, JsonSerializerOptions.Web, cancellationToken);
        }
        catch (JsonException)
        {
            body = null;
        }
        if (body is not { Image.Length: > 0, ImageVersion.Length: > 0 })
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidBody", "Send JSON { \"image\": \"<name>\", \"imageVersion\": \"<version>\", \"label\": \"<label>\" or null to discard }.");
        }
        if (body.Label is not null && TrainingLayout.LabelProblem(body.Label) is { } problem)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidLabel", $"That label cannot be used: it {problem}.");
        }
        var result = await review.LabelAsync(body.Image, body.ImageVersion, body.Label, cancellationToken);
        return result.Outcome == nameof(LabelOutcome.NotQueued)
            ? Problems.Create(StatusCodes.Status409Conflict, "NotQueued", "That image version is not in the review queue (any more): it was labelled already, or uploaded again or deleted since.")
            : new OkObjectResult(result);
    }

    /// <summary>The body of <c>POST /api/review/label</c>.</summary>
    public sealed record LabelRequest(string? Image, string? ImageVersion, string? Label);
}
