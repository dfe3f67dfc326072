using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;

namespace ServerlessClassifier.Functions.Functions;

/// <summary>
/// The review page's API. Every call needs the function key (as every function but health) and a signed-in caller with
/// a role (<see cref="ReviewerIdentity"/>: App Service authentication in Azure; 401 without, 403 without the role):
/// <list type="bullet">
/// <item><c>GET /api/review</c> (Reviewer or Approver): the queued uploads (at most 100), the live model's labels, who is asking.</item>
/// <item><c>GET /api/review/thumbnail?image=&lt;name&gt;</c> or <c>?label=&lt;id&gt;</c> (Reviewer or Approver): a small JPEG of a
/// queued image, or of a staged label's image.</item>
/// <item><c>POST /api/review/label</c> with <c>{ "image", "imageVersion", "label" }</c> (Reviewer; a label that is not a class of
/// the live model also needs Approver): removes the upload from the queue and stages the label for approval
/// (<c>"label": null</c> discards it; a multi-label model's upload takes <c>"labels": [...]</c> instead, <c>[]</c> for none): 200 <c>{ outcome, label, newClass, id }</c>, 400 a bad label or body, 409 not queued (any
/// more) in that version, e.g. another reviewer was first.</item>
/// <item><c>GET /api/review/staged</c> (Approver): the labels waiting for approval.</item>
/// <item><c>POST /api/review/decide</c> with <c>{ "id", "approve": true|false }</c> (Approver): an approved label's image is added
/// to the training container; 200 <c>{ outcome, label, image, trainingName }</c>, 409 nothing staged under that id.</item>
/// </list>
/// An image the decoder refuses (<see cref="ImageRejectedException"/>) is answered 400, 413 or 415 as classify answers it,
/// by <see cref="Middleware.HttpProblemsMiddleware"/>, which also answers the identity's refusals.
/// </summary>
public sealed class Review(ReviewService review, ReviewerIdentity identity)
{
    [Function("ListReview")]
    public async Task<IActionResult> List(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/review")] HttpRequest request, CancellationToken cancellationToken)
    {
        var reviewer = identity.Require(request, ReviewRoles.Reviewer, ReviewRoles.Approver);
        return new OkObjectResult(await review.ListAsync(reviewer, cancellationToken));
    }

    [Function("ReviewThumbnail")]
    public async Task<IActionResult> Thumbnail(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/review/thumbnail")] HttpRequest request, CancellationToken cancellationToken)
    {
        identity.Require(request, ReviewRoles.Reviewer, ReviewRoles.Approver);
        var image = request.Query["image"].ToString();
        var label = request.Query["label"].ToString();
        if (image.Length == 0 == (label.Length == 0) || label.Length > 0 && !LabelRecord.IsId(label))
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "NoImage", "Name a queued image (?image=<name>) or a staged label (?label=<id>).");
        }
        var jpeg = image.Length > 0 ? await review.ThumbnailAsync(image, cancellationToken) : await review.StagedThumbnailAsync(label, cancellationToken);
        return jpeg is not null
            ? new FileContentResult(jpeg, "image/jpeg")
            : Problems.Create(StatusCodes.Status404NotFound, "NotQueued", "That image is not in the review queue, nor staged (any more).");
    }

    [Function("LabelReview")]
    public async Task<IActionResult> Label(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/review/label")] HttpRequest request, CancellationToken cancellationToken)
    {
        var reviewer = identity.Require(request, ReviewRoles.Reviewer);
        var body = await ReadAsync<LabelRequest>(request, cancellationToken);
        if (body is not { Image.Length: > 0, ImageVersion.Length: > 0 } || body.Label is not null && body.Labels is not null)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidBody", "Send JSON { \"image\": \"<name>\", \"imageVersion\": \"<version>\", \"label\": \"<label>\" or null to discard }, " +
                "or for a multi-label model's upload \"labels\": [\"<label>\", ...] ([] for none) instead of \"label\".");
        }
        if (body.Label is not null && TrainingLayout.LabelProblem(body.Label) is { } problem)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidLabel", $"That label cannot be used: it {problem}.");
        }
        if (body.Labels is not null && ReviewLabeling.MultiLabelProblem(body.Labels) is { } labelsProblem)
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidLabel", $"Those labels cannot be used: {labelsProblem}.");
        }
        var result = await review.LabelAsync(reviewer, body.Image, body.ImageVersion, body.Label, body.Labels?.Select(l => l!).ToList(), cancellationToken);
        return result.Outcome switch
        {
            nameof(LabelOutcome.NotQueued) => Problems.Create(StatusCodes.Status409Conflict, "NotQueued",
                "That image version is not in the review queue (any more): it was labelled already, or uploaded again or deleted since."),
            nameof(LabelOutcome.AlreadyStaged) => Problems.Create(StatusCodes.Status409Conflict, "AlreadyStaged",
                "A label for that image version is waiting for approval already."),
            _ => new OkObjectResult(result),
        };
    }

    [Function("ListStagedLabels")]
    public async Task<IActionResult> ListStaged(
        [HttpTrigger(AuthorizationLevel.Function, "get", Route = "api/review/staged")] HttpRequest request, CancellationToken cancellationToken)
    {
        identity.Require(request, ReviewRoles.Approver);
        return new OkObjectResult(await review.ListStagedAsync(cancellationToken));
    }

    [Function("DecideLabel")]
    public async Task<IActionResult> Decide(
        [HttpTrigger(AuthorizationLevel.Function, "post", Route = "api/review/decide")] HttpRequest request, CancellationToken cancellationToken)
    {
        var approver = identity.Require(request, ReviewRoles.Approver);
        var body = await ReadAsync<DecideRequest>(request, cancellationToken);
        if (body is not { Approve: not null } || !LabelRecord.IsId(body.Id))
        {
            return Problems.Create(StatusCodes.Status400BadRequest, "InvalidBody", "Send JSON { \"id\": \"<staged label id>\", \"approve\": true or false }.");
        }
        var result = await review.DecideAsync(approver, body.Id!, body.Approve.Value, cancellationToken);
        return result.Outcome == nameof(ApprovalOutcome.NotStaged)
            ? Problems.Create(StatusCodes.Status409Conflict, "NotStaged", "No label is waiting for approval under that id: it was decided already.")
            : new OkObjectResult(result);
    }

    private static async Task<T?> ReadAsync<T>(HttpRequest request, CancellationToken cancellationToken) where T : class
    {
        try
        {
            return await JsonSerializer.DeserializeAsync<T>(request.Body, JsonSerializerOptions.Web, cancellationToken);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>The body of <c>POST /api/review/label</c>.</summary>
    public sealed record LabelRequest(string? Image, string? ImageVersion, string? Label, IReadOnlyList<string?>? Labels = null);

    /// <summary>The body of <c>POST /api/review/decide</c>.</summary>
    public sealed record DecideRequest(string? Id, bool? Approve);
}
