using Azure.Storage.Blobs;

namespace ServerlessClassifier.Functions.Services;

/// <summary>The app's three containers (names from <c>Classifier:*Container</c>), on the <c>ClassifierStorage</c> connection.</summary>
public sealed record ClassifierContainers(BlobContainerClient Images, BlobContainerClient Predictions, BlobContainerClient Models);
