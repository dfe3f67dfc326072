using Azure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions.Contracts;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.Functions.Services;

/// <summary>
/// The review page's operations over ModelCore's review queue and labels, for a caller <see cref="ReviewerIdentity"/>
/// has read: list the queued uploads, a thumbnail of one (or of a staged label's image), a person's label for one,
/// which is staged (<see cref="ReviewLabeling.ConfirmAsync"/>) and reaches the training container only when an
/// Approver approves it (<see cref="ReviewLabeling.DecideAsync"/>), as with <c>trainjob review import|approve</c>. A
/// label the live model has no class for needs the Approver role as well. Every label, discard and decision is
/// recorded in the review container (who, when, image version, suggestion) and logged.
/// </summary>
public sealed partial class ReviewService(ReviewQueue queue, ReviewLabels labels, ClassifierContainers containers, ImageDecoder decoder, ModelRegistry models,
    ThumbnailCache thumbnails, ILogger<ReviewService> logger)
{
    public const int MaxItems = 100;

    public async Task<ReviewList> ListAsync(Reviewer reviewer, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reviewer);
        var cards = new List<ReviewCard>();
        var more = false;
        var classes = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        await foreach (var (item, _) in queue.ListAsync(cancellationToken).ConfigureAwait(false))
        {
            if (cards.Count == MaxItems)
            {
                more = true;
                break;
            }
            IReadOnlyList<string>? modelClasses = null;
            if (item.Model is { } named && !classes.TryGetValue(named, out modelClasses))
            {
                modelClasses = classes[named] = await ClassesAsync(named, cancellationToken).ConfigureAwait(false);
            }
            cards.Add(new ReviewCard(item.Image, item.ImageVersion, item.SuggestedLabel, item.Label, item.Confidence, item.Margin,
                item.OutOfDistribution, item.UnknownReason, item.Reasons, item.QueuedUtc) { Model = item.Model, Labels = modelClasses, SuggestedLabels = item.SuggestedLabels });
        }
        return new ReviewList(cards, await ClassesAsync(null, cancellationToken).ConfigureAwait(false), more, await queue.CountTodayAsync(cancellationToken).ConfigureAwait(false),
            queue.Settings.MaxPerDay, new ReviewerSummary(reviewer.Actor.Name, reviewer.Roles));
    }

    /// <summary>A thumbnail of a listed image version; null when it is not listed (or no longer exists in that version).</summary>
    public async Task<byte[]?> ThumbnailAsync(string image, CancellationToken cancellationToken)
    {
        if (await queue.GetAsync(image, cancellationToken).ConfigureAwait(false) is not { } queued)
        {
            return null;
        }
        try
        {
            var blob = containers.Images.GetBlobClient(image);
            var properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            if (PredictionBlobs.VersionOf(properties.ETag) != queued.Item.ImageVersion)
            {
                return null;
            }
            if (thumbnails.TryGet(image, queued.Item.ImageVersion, out var made))
            {
                return made; // made once per image version (per instance): not downloaded or decoded again
            }
            var bytes = await ImageBlobs.ReadAsync(blob, properties.ETag, properties.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
            var jpeg = await Thumbnail.JpegAsync(decoder, bytes, cancellationToken).ConfigureAwait(false);
            thumbnails.Add(image, queued.Item.ImageVersion, jpeg);
            return jpeg;
        }
        catch (RequestFailedException e) when (e.Status is 404 or 412)
        {
            return null;
        }
    }

    /// <summary>A thumbnail of the bytes staged with a label; null when no label is staged under <paramref name="id"/>.</summary>
    public async Task<byte[]?> StagedThumbnailAsync(string id, CancellationToken cancellationToken)
    {
        if (await labels.GetStagedAsync(id, cancellationToken).ConfigureAwait(false) is not { } staged)
        {
            return null;
        }
        return await Thumbnail.JpegAsync(decoder, await labels.ReadStagedImageAsync(staged.Record, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes the listed image version out of the queue, then stages <paramref name="label"/> for it (null: records a discard);
    /// see <see cref="ReviewLabeling"/>. A multi-label model's upload takes <paramref name="ticked"/> instead (several, or
    /// none: a negative); one label for it, or a set for a multi-class model's upload, is a 400 with nothing written.
    /// A label that is not a class of the live model (or any label while no model is live) needs the Approver role: 403
    /// otherwise, nothing written. The model is the one whose prediction listed the upload (a named model's classes for its uploads).
    /// </summary>
    public async Task<LabelResult> LabelAsync(Reviewer reviewer, string image, string imageVersion, string? label, IReadOnlyList<string>? ticked, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(reviewer);
        var item = (await queue.GetAsync(image, cancellationToken).ConfigureAwait(false))?.Item;
        if (item is not null && item.ImageVersion == imageVersion && (label is not null || ticked is not null) && item.IsMultiLabel != ticked is not null)
        {
            throw new InvalidRequestException(StatusCodes.Status400BadRequest, item.IsMultiLabel ? "LabelsExpected" : "LabelExpected", item.IsMultiLabel
                ? "That upload was listed by a multi-label model: send \"labels\": [...] with every label it carries ([] for none), not one \"label\"."
                : "That upload was listed by a multi-class model: send one \"label\", not \"labels\".");
        }
        var classes = await ClassesAsync(item?.Model, cancellationToken).ConfigureAwait(false);
        var given = ticked ?? (label is null ? [] : [label]);
        var newLabels = given.Where(l => !classes.Contains(l, StringComparer.Ordinal)).ToList();
        var newClass = newLabels.Count > 0;
        if (newClass && !reviewer.Has(ReviewRoles.Approver))
        {
            throw new InvalidRequestException(StatusCodes.Status403Forbidden, "NewClassNeedsApprover",
                $"\"{newLabels[0]}\" is not a class of the live model: a new class needs the {ReviewRoles.Approver} role. Pick one of its classes, or ask an Approver.");
        }
        var decision = ticked is not null
            ? LabelDecision.MultiLabel(ticked, reviewer.Actor, newClass, DateTimeOffset.UtcNow)
            : new LabelDecision(label, reviewer.Actor, newClass, DateTimeOffset.UtcNow);
        var (outcome, record) = await ReviewLabeling.ConfirmAsync(queue, labels, containers.Images, decoder, image, imageVersion, decision, cancellationToken).ConfigureAwait(false);
        var text = record?.LabelText ?? (ticked is null ? label : string.Join(';', ticked));
        LogLabel(image, imageVersion, outcome, text, record?.SuggestedLabel, newClass, reviewer.Actor.Name, reviewer.Actor.Id, reviewer.Actor.Source);
        return new LabelResult(outcome.ToString(), ticked is null ? label : text, newClass, outcome == LabelOutcome.Staged ? record?.Id : null) { Labels = record?.Labels ?? ticked };
    }

    /// <summary>The staged labels, for an Approver.</summary>
    public async Task<StagedList> ListStagedAsync(CancellationToken cancellationToken)
    {
        var cards = new List<StagedCard>();
        await foreach (var (record, _) in labels.ListStagedAsync(cancellationToken).ConfigureAwait(false))
        {
            if (cards.Count == MaxItems)
            {
                return new StagedList(cards, More: true);
            }
            cards.Add(new StagedCard(record.Id, record.Image, record.ImageVersion, record.LabelText!, record.SuggestedLabel, record.NewClass, record.LabelledBy.Name, record.LabelledUtc)
            {
                Model = record.Model,
                Labels = record.Labels,
                SuggestedLabels = record.SuggestedLabels,
            });
        }
        return new StagedList(cards, More: false);
    }

    /// <summary>
    /// An Approver's decision on a staged label: approved labels go to their model's training data, the default model's to the
    /// training container (<c>&lt;label&gt;/&lt;file&gt;</c>), a named model's to the named models' training container
    /// (<c>&lt;model&gt;/&lt;label&gt;/&lt;file&gt;</c>): <see cref="ReviewTrainingData"/>.
    /// </summary>
    public async Task<DecisionResult> DecideAsync(Reviewer approver, string id, bool approve, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(approver);
        var training = new ReviewTrainingData(TrainingImages.Blobs(containers.Training ?? throw new InvalidOperationException("No training container is configured."), ""),
            containers.NamedTraining);
        var (outcome, record, name) = await ReviewLabeling.DecideAsync(labels, training, id, approve, approver.Actor, DateTimeOffset.UtcNow, cancellationToken).ConfigureAwait(false);
        LogDecision(id, record?.Image, record?.LabelText, outcome, approver.Actor.Name, approver.Actor.Id, record?.LabelledBy.Name, name);
        return new DecisionResult(outcome.ToString(), record?.LabelText, record?.Image, name) { Labels = record?.Labels };
    }

    /// <summary>The live classes of a model (null: the default model); none while it has no live version (then every label is a new class).</summary>
    private async Task<IReadOnlyList<string>> ClassesAsync(string? model, CancellationToken cancellationToken)
    {
        try
        {
            using var lease = await models.AcquireAsync(model ?? ModelNames.Default, cancellationToken).ConfigureAwait(false);
            return lease.Model.Manifest.Labels;
        }
        catch (Exception e) when (e is ModelUnavailableException or ModelNotFoundException)
        {
            return [];
        }
    }

    [LoggerMessage(50, LogLevel.Information, "Review: {Image} version {ImageVersion} {Outcome} with label {Label} (suggested {SuggestedLabel}, new class {NewClass}) by {ReviewerName} ({ReviewerId}, {Source})")]
    private partial void LogLabel(string image, string imageVersion, LabelOutcome outcome, string? label, string? suggestedLabel, bool newClass, string reviewerName, string reviewerId, string source);

    [LoggerMessage(51, LogLevel.Information, "Review: label {LabelId} ({Image} as {Label}) {Outcome} by {ApproverName} ({ApproverId}); labelled by {ReviewerName}; training image {TrainingName}")]
    private partial void LogDecision(string labelId, string? image, string? label, ApprovalOutcome outcome, string approverName, string approverId, string? reviewerName, string? trainingName);
}
