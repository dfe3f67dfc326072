namespace ServerlessClassifier.ModelCore.Review;

/// <summary>What <see cref="ReviewQueue.OfferAsync"/> did with a prediction.</summary>
public enum ReviewOutcome
{
    /// <summary>Confident, in distribution and with a clear margin: not listed.</summary>
    NotNeeded,

    /// <summary>Listed (a new item, or one replacing the item of an older version of the image).</summary>
    Queued,

    /// <summary>This image version is listed already (a re-delivery, or another writer was first): nothing written.</summary>
    AlreadyQueued,

    /// <summary>Today's <see cref="ReviewSettings.MaxPerDay"/> are listed already: not listed.</summary>
    DailyLimitReached,

    /// <summary><see cref="ReviewSettings.MaxPerDay"/> is 0: the queue is off.</summary>
    Disabled,

    /// <summary>The image's name is too long for an item blob (<c>items/&lt;name&gt;.json</c> over 1,024 characters): not listed.</summary>
    NameTooLong,
}
