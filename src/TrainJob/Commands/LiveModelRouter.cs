using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>
/// What <c>classify --container</c> classifies each image with when it backfills with the live models (<c>--model
/// current</c>, the default): the rule of the app's blob trigger (README "Several models", "Canary releases"). The first
/// segment of an image's name picks a published named model, any other name the default model; during a canary release
/// the name's <see cref="CanaryRouter"/> bucket picks the version. The pointers are read once, when the backfill starts;
/// each version is loaded on its first image and kept until the backfill ends.
/// </summary>
internal sealed class LiveModelRouter : IDisposable
{
    private readonly CliContext context;
    private readonly IReadOnlyDictionary<string, CurrentModelPointer> live;
    private readonly Dictionary<(string Model, string Version), Loaded> loaded = [];
    private readonly Dictionary<(string Model, string Version), int> written = [];
    private readonly SemaphoreSlim gate = new(1, 1);

    private sealed record Loaded(ClassificationPipeline Pipeline, PredictionClassifier Classifier);

    private LiveModelRouter(CliContext context, IReadOnlyDictionary<string, CurrentModelPointer> live)
    {
        this.context = context;
        this.live = live;
    }

    /// <summary>Reads every model's <c>current.json</c>; a store with no published model is an error, as for <c>--model current</c>.</summary>
    public static async Task<LiveModelRouter> CreateAsync(CliContext context, CancellationToken cancellationToken)
    {
        var models = context.Storage.Container(context.Storage.ModelsContainer);
        var live = new SortedDictionary<string, CurrentModelPointer>(StringComparer.Ordinal);
        foreach (var name in await ModelStore.ListModelsAsync(models, cancellationToken))
        {
            if (await new ModelStore(models, name).GetCurrentAsync(cancellationToken) is { } current)
            {
                live[name] = current.State;
            }
        }
        return live.Count == 0
            ? throw new InvalidOperationException($"No model has been published to the '{context.Storage.ModelsContainer}' container yet; publish one first.")
            : new LiveModelRouter(context, live);
    }

    /// <summary>The model an image's name routes to (as the app's <c>RouteBlobAsync</c>).</summary>
    public string ModelFor(string imageName)
    {
        var slash = imageName.IndexOf('/', StringComparison.Ordinal);
        return slash > 0 && imageName[..slash] is var first && first != ModelNames.Default && live.ContainsKey(first) ? first : ModelNames.Default;
    }

    /// <summary>Whether an image has no live model to classify it (its model, the default one, is not published).</summary>
    public bool HasNoModel(string imageName) => !live.ContainsKey(ModelFor(imageName));

    /// <summary>The version an image gets: the canary's when its name's bucket falls in the canary's share, else the current one.</summary>
    public string VersionFor(string imageName)
    {
        var pointer = live[ModelFor(imageName)];
        return pointer.Canary is { } canary && CanaryRouter.ChoosesCanary(CanaryRouter.Bucket(imageName), canary) ? canary.Version : pointer.Version;
    }

    /// <summary>The classifier for an image, loading (and verifying) its model version on first use.</summary>
    public async Task<PredictionClassifier> ClassifierForAsync(string imageName, CancellationToken cancellationToken)
    {
        var key = (ModelFor(imageName), VersionFor(imageName));
        await gate.WaitAsync(cancellationToken);
        try
        {
            if (!loaded.TryGetValue(key, out var entry))
            {
                var package = await context.Storage.ModelStore(key.Item1).LoadAsync(key.Item2, ModelPackage.ServingRoles, cancellationToken);
                var pipeline = ClassificationPipeline.CreateServing(package);
                entry = new Loaded(pipeline, new PredictionClassifier(key.Item2, pipeline.Decoder, (bytes, _) => Task.FromResult(pipeline.Classify(bytes)))
                {
                    Model = key.Item1 == ModelNames.Default ? null : key.Item1,
                });
                loaded[key] = entry;
            }
            return entry.Classifier;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>Counts a prediction written for an image (for <see cref="Summary"/>).</summary>
    public void CountWritten(string imageName)
    {
        lock (written)
        {
            var key = (ModelFor(imageName), VersionFor(imageName));
            written[key] = written.GetValueOrDefault(key) + 1;
        }
    }

    /// <summary>The live versions, and how many predictions each wrote: <c>default 2026... (12); cats 2026... (9), canary 2026... 10 % (1)</c>.</summary>
    public string Summary() => string.Join("; ", live.Select(p =>
    {
        var current = $"{p.Key} version {p.Value.Version} ({written.GetValueOrDefault((p.Key, p.Value.Version))})";
        return p.Value.Canary is { } c ? $"{current}, canary {c.Version} at {c.Traffic} % ({written.GetValueOrDefault((p.Key, c.Version))})" : current;
    }));

    public void Dispose()
    {
        foreach (var entry in loaded.Values)
        {
            entry.Pipeline.Dispose();
        }
        gate.Dispose();
    }
}
