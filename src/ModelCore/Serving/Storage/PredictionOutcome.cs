namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>What became of one image when its prediction was brought up to date.</summary>
public enum PredictionOutcome
{
    /// <summary>A prediction with status <c>ok</c> was written (new, or replacing one of an older image version).</summary>
    Classified,

    /// <summary>A prediction with status <c>rejected</c> and the reason was written.</summary>
    Rejected,

    /// <summary>The prediction already describes this image version (a re-delivery, or another writer was first): nothing written.</summary>
    AlreadyDone,

    /// <summary>No model is live: nothing written; the sweep classifies the image once a model is published.</summary>
    NoModel,

    /// <summary>The image does not exist (deleted): nothing classified; a prediction it had was removed.</summary>
    ImageGone,

    /// <summary>The image was overwritten while it was being read: nothing written; its newer version is classified on its own delivery.</summary>
    Superseded,

    /// <summary>A prediction whose image no longer exists was removed (the sweep, the backfill).</summary>
    Removed,

    /// <summary>
    /// The image's name is too long for a prediction (<c>&lt;name&gt;.json</c> would be over 1,024 characters,
    /// <see cref="Inference.PredictionDocument.CanStoreFor"/>): refused before it was read, nothing written.
    /// </summary>
    NameTooLong,
}
