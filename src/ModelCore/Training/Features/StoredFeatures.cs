using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Jobs;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// Has the features of <paramref name="images"/> (blob and version) computed with <paramref name="extractor"/> and written
/// to the feature store under <paramref name="key"/> elsewhere, and returns when that is over (whatever it did not
/// compute, the run computes itself).
/// </summary>
public delegate Task FeatureFanOut(FeatureExtractor extractor, string key, IReadOnlyList<FeatureImage> images, CancellationToken cancellationToken);

/// <summary>
/// One head-mode run's use of the <see cref="FeatureStore"/> under one key: reads the stored features of the
/// images it has, and writes the features it computes in files of <see cref="FeatureStore.RowsPerFile"/> images as
/// they fill (each uploaded in the background while extraction goes on), so a run that stops part-way keeps what
/// it computed. Only images with an <see cref="LabeledImage.Identity"/> (blob and version) are read or written.
/// </summary>
internal sealed class StoredFeatures(FeatureStore store, string key, int numFeatures)
{
    /// <summary>Computes the features of images the store lacks elsewhere (a features job) before the run computes what is still missing.</summary>
    public FeatureFanOut? FanOut { get; init; }

    /// <summary>The mean image the extractor's preprocessing subtracts, if any (for the fan-out's extractor).</summary>
    public float[]? MeanImage { get; init; }

    /// <summary>Images handed to <see cref="FanOut"/>.</summary>
    public int FannedOut { get; set; }

    private readonly string run = JobIds.New(DateTimeOffset.UtcNow);
    private readonly List<Task> uploads = [];
    private readonly List<FeatureImage> pendingImages = [];
    private float[] pending = [];
    private int files;

    public string Key { get; } = key;

    public FeatureStore Store { get; } = store;

    /// <summary>Images whose features were read from the store.</summary>
    public int Read { get; private set; }

    /// <summary>Files read.</summary>
    public int FilesRead { get; private set; }

    /// <summary>Images whose computed features went to the store.</summary>
    public int Written { get; private set; }

    public async Task ReadAsync(Func<FeatureImage, Memory<float>?> want, CancellationToken cancellationToken)
    {
        var summary = await Store.ReadAsync(Key, numFeatures, want, cancellationToken).ConfigureAwait(false);
        Read = summary.Found;
        FilesRead = summary.Files;
    }

    /// <summary>Queues one image's computed features; a full file starts uploading.</summary>
    public void Add(FeatureImage image, ReadOnlySpan<float> features, CancellationToken cancellationToken)
    {
        if (pendingImages.Count == 0)
        {
            pending = new float[FeatureStore.RowsPerFile * numFeatures];
        }
        features.CopyTo(pending.AsSpan(pendingImages.Count * numFeatures, numFeatures));
        pendingImages.Add(image);
        if (pendingImages.Count == FeatureStore.RowsPerFile)
        {
            StartUpload(cancellationToken);
        }
    }

    /// <summary>Uploads what is queued and waits for every upload (a failed one is thrown).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (pendingImages.Count > 0)
        {
            StartUpload(cancellationToken);
        }
        await Task.WhenAll(uploads).ConfigureAwait(false);
    }

    private void StartUpload(CancellationToken cancellationToken)
    {
        var images = pendingImages.ToArray();
        var features = pending.AsMemory(0, images.Length * numFeatures);
        var file = $"{run}-{files++:D5}";
        uploads.Add(Store.WriteAsync(Key, file, images, features, numFeatures, cancellationToken));
        Written += images.Length;
        pendingImages.Clear();
        pending = [];
    }
}
