using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>A verified model and where it came from.</summary>
public sealed record LoadedModel(ModelPackage Package, string? Version, string Description);

/// <summary>Resolves <c>--model</c>: an existing folder is a model folder; anything else is a version id in the model store (<c>current</c> = the live one).</summary>
public static class ModelLoader
{
    public const string Current = "current";

    public static async Task<LoadedModel> LoadAsync(string model, CliContext context, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        ArgumentNullException.ThrowIfNull(context);
        if (Directory.Exists(model))
        {
            var package = await ModelPackage.LoadAsync(model, cancellationToken);
            return new LoadedModel(package, package.Manifest.Version, Path.GetFullPath(model));
        }
        if (File.Exists(model))
        {
            throw new UsageException($"--model {model} is a file; pass the model folder (the one with {ModelManifest.FileName}) or a published version id.");
        }
        if (!ModelStore.IsValidVersion(model))
        {
            throw new UsageException($"--model \"{model}\" is neither an existing folder nor a version id.");
        }
        var store = context.Storage.ModelStore();
        var version = model;
        if (string.Equals(model, Current, StringComparison.OrdinalIgnoreCase))
        {
            var current = await store.GetCurrentAsync(cancellationToken)
                ?? throw new InvalidOperationException($"No model has been published to the '{context.Storage.ModelsContainer}' container yet; publish one first.");
            version = current.State.Version;
        }
        try
        {
            var package = await store.LoadAsync(version, ModelPackage.ServingRoles, cancellationToken);
            return new LoadedModel(package, version, $"version {version}");
        }
        catch (FileNotFoundException e)
        {
            throw new InvalidOperationException($"Model version {version} is not in the '{context.Storage.ModelsContainer}' container (or is incomplete): {e.Message}", e);
        }
    }

    /// <summary>The serving pipeline (ONNX Runtime) for a model: what evaluate and classify run is what production serves.</summary>
    public static ClassificationPipeline CreatePipeline(LoadedModel model) =>
        ClassificationPipeline.CreateServing((model ?? throw new ArgumentNullException(nameof(model))).Package);

    /// <summary>
    /// <see cref="CreatePipeline(LoadedModel)"/>, saying on stderr which graph runs when it is not the model's <c>model.onnx</c>
    /// as trained (this CPU lacks the 8-bit dot products its int8 graph was made for), so the figures are read as this CPU's.
    /// </summary>
    public static ClassificationPipeline CreatePipeline(LoadedModel model, CliContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var pipeline = CreatePipeline(model);
        if (pipeline.ServedGraph is { } served && (served.Unchecked || served.File.Role != ModelFileRoles.Onnx))
        {
            context.Error($"{(served.Unchecked ? "Warning: serving" : "Serving")} {served.File.Name}, {served.Description}: {served.Reason} ({CpuFeatures.Describe()}).");
        }
        return pipeline;
    }
}
