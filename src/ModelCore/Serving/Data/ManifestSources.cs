using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>Where a manifest's image references point: the storage account, its training container, and prefix rewrites.</summary>
public sealed record ManifestSources
{
    /// <summary>The configured storage account, created only when a reference needs it (null: local files only).</summary>
    public Func<BlobServiceClient>? Account { get; init; }

    /// <summary>The container a bare blob name (<c>cat/1.jpg</c>) is read from when no local file has that path.</summary>
    public string TrainingContainer { get; init; } = ContainerDefaults.Training;

    /// <summary>Applied first, in order; the first whose <see cref="PrefixRewrite.From"/> matches wins.</summary>
    public IReadOnlyList<PrefixRewrite> Rewrites { get; init; } = [];
}
