using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Training;

namespace ServerlessClassifier.TrainJob.Commands.Train;

/// <summary>
/// What a run was started with (the data source and the engine's resolved options), saved beside its
/// checkpoint as <c>checkpoints/run.json</c> so that <c>train --output X --resume</c> alone continues it.
/// <see cref="RewritePrefixes"/> are a manifest's <c>--rewrite-prefix FROM=TO</c> options, as given;
/// <see cref="Precision"/> is <c>--precision</c> (null in runs saved before it existed: the default);
/// <see cref="FeatureCache"/> is <c>--feature-cache</c>.
/// </summary>
public sealed record SavedRun(string Data, TrainingOptions Options, IReadOnlyList<string>? RewritePrefixes = null, PrecisionChoice? Precision = null, bool FeatureCache = false)
{
    /// <summary>The precision the model is saved with: <see cref="Precision"/>, or the default.</summary>
    public PrecisionChoice ServedPrecision => Precision ?? new PrecisionOptions().Precision;

    public const string FileName = "run.json";

    public static SavedRun? Read(string checkpoints)
    {
        var path = Path.Combine(checkpoints, FileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize<SavedRun>(File.ReadAllText(path), ModelManifest.JsonOptions)
                ?? throw new InvalidDataException($"{path} is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a saved run ({e.Message}); start a new run in another --output.", e);
        }
    }

    public void Write(string checkpoints)
    {
        Directory.CreateDirectory(checkpoints);
        AtomicFile.WriteAllText(Path.Combine(checkpoints, FileName), JsonSerializer.Serialize(this, ModelManifest.JsonOptions));
    }
}
