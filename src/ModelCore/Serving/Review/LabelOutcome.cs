namespace ServerlessClassifier.ModelCore.Review;

/// <summary>What became of one labelled upload.</summary>
public enum LabelOutcome
{
    /// <summary>Added to the training data and removed from the queue.</summary>
    Added,

    /// <summary>The same image was in the training data already; removed from the queue.</summary>
    AlreadyPresent,

    /// <summary>Removed from the queue without being added (a person discarded it).</summary>
    Discarded,

    /// <summary>Not (or no longer) in the queue for this image version: nothing done.</summary>
    NotQueued,
}
