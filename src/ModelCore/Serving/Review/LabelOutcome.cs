namespace ServerlessClassifier.ModelCore.Review;

/// <summary>What became of a person's label for one listed upload.</summary>
public enum LabelOutcome
{
    /// <summary>Removed from the queue and staged (<c>review/staged/</c>): it reaches the training data only when an Approver approves it.</summary>
    Staged,

    /// <summary>Removed from the queue without a label (a person discarded it); the discard is recorded.</summary>
    Discarded,

    /// <summary>Not (or no longer) in the queue for this image version: nothing done. Of two people labelling one upload at once, the second gets this.</summary>
    NotQueued,

    /// <summary>Removed from the queue, but a label for this image version was staged already (it had been listed again): that one stays.</summary>
    AlreadyStaged,
}

/// <summary>What an Approver's decision on a staged label did.</summary>
public enum ApprovalOutcome
{
    /// <summary>Approved: the labelled bytes were added to the training data.</summary>
    Added,

    /// <summary>Approved: the same bytes were in the training data under that label already.</summary>
    AlreadyPresent,

    /// <summary>Rejected: nothing was added.</summary>
    Rejected,

    /// <summary>No label is staged under that id (decided already, or never staged): nothing done.</summary>
    NotStaged,
}
