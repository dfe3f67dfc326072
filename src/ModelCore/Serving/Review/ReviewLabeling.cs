using Azure;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// The one rule that turns a person's label for a listed upload into training data, in two steps, behind
/// <c>trainjob review import|approve</c> and the review page:
/// <list type="number">
/// <item><b>Label</b> (<see cref="ApplyAsync"/>, <see cref="ConfirmAsync"/>): the upload's queue item is removed first,
/// conditionally on the item that was labelled (If-Match), and only the caller whose removal succeeds goes on: of two
/// people labelling one upload at once, one stages a label and the other gets <see cref="LabelOutcome.NotQueued"/>. The
/// label is then staged with the bytes that were labelled (<see cref="ReviewLabels"/>); a discard is recorded.</item>
/// <item><b>Decide</b> (<see cref="DecideAsync"/>): an Approver's decision is recorded first (once per image version:
/// of two decisions the first one counts), then an approved label's bytes are added to the training data through
/// <see cref="TrainingImages"/> (its label rule; never overwriting), then the staged label is removed. A decision
/// interrupted part-way is finished by the next call for the same label.</item>
/// </list>
/// Training reads only the training data, so a label nobody approved never reaches a training run.
/// </summary>
public static class ReviewLabeling
{
    /// <summary>The training file name of an image blob: its name with '/' turned into '_' (one folder per label).</summary>
    public static string FileNameFor(string image)
    {
        ArgumentException.ThrowIfNullOrEmpty(image);
        var name = string.Concat(image.Select(c => c is '/' or '\\' or ':' || char.IsControl(c) ? '_' : c)).TrimStart('.');
        return name.Length == 0 ? "image" : name.Length > 200 ? name[^200..] : name;
    }

    /// <summary>
    /// Labels (or, with a null label, discards) the image version <paramref name="imageVersion"/> of a listed upload with
    /// <paramref name="content"/>, the bytes the person looked at (an export's file).
    /// </summary>
    public static async Task<(LabelOutcome Outcome, LabelRecord? Record)> ApplyAsync(ReviewQueue queue, ReviewLabels labels, string image, string imageVersion, string fileName,
        ReadOnlyMemory<byte> content, LabelDecision decision, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        var queued = await queue.GetAsync(image, cancellationToken).ConfigureAwait(false);
        return queued is null || queued.Item.ImageVersion != imageVersion
            ? (LabelOutcome.NotQueued, null)
            : await ApplyAsync(queue, labels, queued, fileName, content, decision, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The review page's path: reads the listed image version from the images container (within the decoder's byte
    /// limit), then labels it as <see cref="ApplyAsync(ReviewQueue, ReviewLabels, string, string, string, ReadOnlyMemory{byte}, LabelDecision, CancellationToken)"/>.
    /// <see cref="LabelOutcome.NotQueued"/> when the item is gone or lists another version, or the image was replaced
    /// or deleted since (then nothing is removed).
    /// </summary>
    public static async Task<(LabelOutcome Outcome, LabelRecord? Record)> ConfirmAsync(ReviewQueue queue, ReviewLabels labels, BlobContainerClient images, ImageDecoder decoder,
        string image, string imageVersion, LabelDecision decision, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queue);
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(decision);
        var queued = await queue.GetAsync(image, cancellationToken).ConfigureAwait(false);
        if (queued is null || queued.Item.ImageVersion != imageVersion)
        {
            return (LabelOutcome.NotQueued, null);
        }
        ReadOnlyMemory<byte> content = default;
        if (!decision.IsDiscard)
        {
            try
            {
                var blob = images.GetBlobClient(image);
                var properties = await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                if (PredictionBlobs.VersionOf(properties.Value.ETag) != imageVersion)
                {
                    return (LabelOutcome.NotQueued, null);
                }
                content = await ImageBlobs.ReadAsync(blob, properties.Value.ETag, properties.Value.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
            }
            catch (RequestFailedException e) when (e.Status is 404 or 412)
            {
                return (LabelOutcome.NotQueued, null);
            }
        }
        return await ApplyAsync(queue, labels, queued, FileNameFor(image), content, decision, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// An Approver's decision on the staged label <paramref name="id"/>: <paramref name="approve"/> adds its bytes to
    /// <paramref name="training"/> under its label, otherwise nothing is added; either way the decision is recorded and
    /// the staged label removed. When the label was decided already (another Approver was first, or an earlier call
    /// stopped part-way), that recorded decision is the one carried out; when that other call has already carried it out
    /// completely (the staged label is gone), the outcome is <see cref="ApprovalOutcome.NotStaged"/>. Returns the outcome,
    /// the record as decided and, when added, the image's name in the training data.
    /// </summary>
    /// <exception cref="InvalidDataException">The staged bytes are missing or not the ones that were labelled: nothing is added.</exception>
    /// <exception cref="InvalidOperationException">The label is a named model's and <paramref name="training"/> has no place for it: nothing is recorded.</exception>
    public static Task<(ApprovalOutcome Outcome, LabelRecord? Record, string? TrainingName)> DecideAsync(ReviewLabels labels, TrainingImages training, string id,
        bool approve, ReviewActor by, DateTimeOffset now, CancellationToken cancellationToken = default) =>
        DecideAsync(labels, new ReviewTrainingData(training, namedModels: null), id, approve, by, now, cancellationToken);

    /// <summary>
    /// <see cref="DecideAsync(ReviewLabels, TrainingImages, string, bool, ReviewActor, DateTimeOffset, CancellationToken)"/>, with the
    /// image added to the training data of the label's own model (<see cref="ReviewTrainingData.For"/>).
    /// </summary>
    public static async Task<(ApprovalOutcome Outcome, LabelRecord? Record, string? TrainingName)> DecideAsync(ReviewLabels labels, ReviewTrainingData training, string id,
        bool approve, ReviewActor by, DateTimeOffset now, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(training);
        ArgumentNullException.ThrowIfNull(by);
        if (await labels.GetStagedAsync(id, cancellationToken).ConfigureAwait(false) is not { } staged)
        {
            return (ApprovalOutcome.NotStaged, null, null);
        }
        // The label's own model's training data, known before anything is recorded (a named model's label never goes elsewhere).
        var destination = training.For(staged.Record.Model);
        var decided = staged.Record with { Decision = approve ? LabelDecisions.Approved : LabelDecisions.Rejected, DecidedBy = by, DecidedUtc = now };
        var decidedHere = await labels.TryRecordAsync(decided, cancellationToken).ConfigureAwait(false);
        if (!decidedHere)
        {
            decided = await labels.GetRecordAsync(id, cancellationToken).ConfigureAwait(false)
                ?? throw new InvalidOperationException($"Label {id} has a record that could not be read back.");
        }
        var outcome = ApprovalOutcome.Rejected;
        string? name = null;
        if (decided.Decision == LabelDecisions.Approved)
        {
            byte[] content;
            try
            {
                content = await labels.ReadStagedImageAsync(staged.Record, cancellationToken).ConfigureAwait(false);
            }
            catch (InvalidDataException) when (!decidedHere)
            {
                // Another Approver decided first and, meanwhile, carried the decision out (added the bytes, then removed the
                // staged label and its bytes): nothing is left to do here. A staged label still there has lost its bytes.
                if (await labels.GetStagedAsync(id, cancellationToken).ConfigureAwait(false) is not null)
                {
                    throw;
                }
                return (ApprovalOutcome.NotStaged, decided, null);
            }
            var fileName = staged.Record.FileName ?? FileNameFor(staged.Record.Image);
            // A multi-label model's labels go into the data's labels.csv beside the image (the form train --multilabel reads).
            var added = staged.Record.Labels is { } set
                ? await destination.AddMultiLabelAsync(set, fileName, content, cancellationToken).ConfigureAwait(false)
                : await destination.AddAsync(staged.Record.Label!, fileName, content, cancellationToken).ConfigureAwait(false);
            (outcome, name) = (added.AlreadyPresent ? ApprovalOutcome.AlreadyPresent : ApprovalOutcome.Added, added.Name);
        }
        await labels.RemoveStagedAsync(staged, cancellationToken).ConfigureAwait(false);
        return (outcome, decided, name);
    }

    /// <summary>
    /// Null when <paramref name="labels"/> can be a multi-label upload's labels: each passes the label rule
    /// (<see cref="TrainingLayout.LabelProblem"/>) and has no ';' (the separator of labels in a labels.csv cell); else what is wrong.
    /// </summary>
    public static string? MultiLabelProblem(IEnumerable<string?> labels)
    {
        ArgumentNullException.ThrowIfNull(labels);
        foreach (var label in labels)
        {
            if (TrainingLayout.LabelProblem(label) is { } problem)
            {
                return $"the label \"{label}\" {problem}";
            }
            if (label!.Contains(DataManifest.MultiLabelSeparator, StringComparison.Ordinal))
            {
                return $"the label \"{label}\" contains '{DataManifest.MultiLabelSeparator}', which separates labels in a labels.csv cell";
            }
        }
        return null;
    }

    /// <summary>A multi-label upload's labels as recorded: checked (<see cref="MultiLabelProblem"/>), each once, in ordinal order.</summary>
    /// <exception cref="ArgumentException">A label cannot be used.</exception>
    public static IReadOnlyList<string> MultiLabelSet(IEnumerable<string> labels)
    {
        var list = labels?.ToList() ?? throw new ArgumentNullException(nameof(labels));
        return MultiLabelProblem(list) is { } problem
            ? throw new ArgumentException($"Those labels cannot be used: {problem}.", nameof(labels))
            : [.. list.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal)];
    }

    private static async Task<(LabelOutcome Outcome, LabelRecord? Record)> ApplyAsync(ReviewQueue queue, ReviewLabels labels, QueuedReview queued, string fileName,
        ReadOnlyMemory<byte> content, LabelDecision decision, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(labels);
        ArgumentNullException.ThrowIfNull(decision);
        if (decision.Label is { } label && TrainingLayout.LabelProblem(label) is { } problem)
        {
            throw new ArgumentException($"The label \"{label}\" {problem}.", nameof(decision));
        }
        if (!decision.IsDiscard && queued.Item.IsMultiLabel != decision.Labels is not null)
        {
            throw new ArgumentException(queued.Item.IsMultiLabel
                ? $"{queued.Item.Image} was listed by a multi-label model: label it with a set of labels (none for a negative), not one label."
                : $"{queued.Item.Image} was listed by a multi-class model: label it with one label, not a set.", nameof(decision));
        }
        if (decision.Labels is { } ticked)
        {
            decision = decision with { Labels = MultiLabelSet(ticked) };
        }
        // Remove first, and go on only when this removal succeeded: a second person labelling the same listed item gets
        // NotQueued instead of adding the image a second time under another label.
        if (!await queue.RemoveAsync(queued.Item.Image, queued.ETag, cancellationToken).ConfigureAwait(false))
        {
            return (LabelOutcome.NotQueued, null);
        }
        var record = LabelRecord.For(queued.Item, decision, fileName, content.Span);
        if (decision.IsDiscard)
        {
            var discarded = record with { Decision = LabelDecisions.Discarded, DecidedBy = decision.By, DecidedUtc = decision.Utc };
            await labels.TryRecordAsync(discarded, cancellationToken).ConfigureAwait(false);
            return (LabelOutcome.Discarded, discarded);
        }
        return (await labels.StageAsync(record, content, cancellationToken).ConfigureAwait(false) ? LabelOutcome.Staged : LabelOutcome.AlreadyStaged, record);
    }
}
