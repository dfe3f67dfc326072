using Azure.Storage.Blobs;

namespace ServerlessClassifier.Functions.Services;

/// <summary>The app's containers (names from <c>Classifier:*Container</c>), on the <c>ClassifierStorage</c> connection.</summary>
public sealed record ClassifierContainers(BlobContainerClient Images, BlobContainerClient Predictions, BlobContainerClient Models)
{
    /// <summary>The labelled training data the review page adds to; null when not configured (tests that need none).</summary>
    public BlobContainerClient? Training { get; init; }

    /// <summary>Named models' training data (<c>&lt;model&gt;/&lt;label&gt;/&lt;file&gt;</c>) that the review page adds their labels to; null when not configured.</summary>
    public BlobContainerClient? NamedTraining { get; init; }
}
