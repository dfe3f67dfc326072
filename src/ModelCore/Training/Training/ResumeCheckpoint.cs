using ServerlessClassifier.ModelCore.Checkpoints;
using System.Text.Json;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The state <c>resume.json</c> records after each completed epoch.</summary>
internal sealed record ResumeState
{
    public const int CurrentFormat = 1;

    public int Format { get; init; } = CurrentFormat;
    public required string OptionsHash { get; init; }
    public required string DataHash { get; init; }
    public required TrainingMode Mode { get; init; }
    public required int CompletedEpochs { get; init; }
    public required int BestEpoch { get; init; }
    public required double BestValidationLoss { get; init; }
    public required int EpochsWithoutImprovement { get; init; }
    public required bool StoppedEarly { get; init; }
    public required IReadOnlyList<EpochMetrics> History { get; init; }

    /// <summary>The trainable module's weights after the last completed epoch (the head in head mode, else the whole model).</summary>
    public required string WeightsFile { get; init; }

    /// <summary>The trainable module's weights at the best epoch.</summary>
    public required string BestWeightsFile { get; init; }

    /// <summary>TorchSharp's optimizer state (moments, step counts).</summary>
    public required string OptimizerFile { get; init; }
}

/// <summary>
/// Resume checkpoints in a folder: per-epoch files (<c>resume-e0003-*.safetensors</c>, <c>*-optimizer.bin</c>),
/// each written to a temporary name and renamed, then <c>resume.json</c> (temp + rename) naming them, then
/// older epochs' files deleted. A crash or cancellation at any point leaves the last complete epoch readable.
/// </summary>
internal static class ResumeCheckpoint
{
    public const string StateFileName = "resume.json";

    public static ResumeState? Read(string folder)
    {
        var path = Path.Combine(folder, StateFileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var state = JsonSerializer.Deserialize<ResumeState>(File.ReadAllBytes(path), Checkpoints.ModelManifest.JsonOptions)
                ?? throw new TrainingException($"{path} is empty.");
            return state.Format == ResumeState.CurrentFormat
                ? state
                : throw new TrainingException($"{path} has format {state.Format}; this build reads {ResumeState.CurrentFormat}.");
        }
        catch (JsonException e)
        {
            throw new TrainingException($"{path} is not a valid resume checkpoint ({e.Message}).", e);
        }
    }

    public static ResumeState Write(string folder, ResumeState draft, nn.Module trainable, IReadOnlyDictionary<string, Tensor> best, optim.Optimizer optimizer)
    {
        Directory.CreateDirectory(folder);
        var prefix = $"resume-e{draft.CompletedEpochs:D4}";
        var state = draft with
        {
            WeightsFile = $"{prefix}-weights.safetensors",
            BestWeightsFile = $"{prefix}-best.safetensors",
            OptimizerFile = $"{prefix}-optimizer.bin",
        };
        AtomicFile.Write(Path.Combine(folder, state.WeightsFile), s => trainable.save_safetensors(s, leaveOpen: true));
        AtomicFile.Write(Path.Combine(folder, state.BestWeightsFile), s => Safetensors.SaveStateDict(s, best.ToDictionary(p => p.Key, p => p.Value), leaveOpen: true));
        AtomicFile.Write(Path.Combine(folder, state.OptimizerFile), s =>
        {
            using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
            ((TorchSharp.Modules.OptimizerHelper)optimizer).save_state_dict(writer);
        });
        AtomicFile.Write(Path.Combine(folder, StateFileName), s => JsonSerializer.Serialize(s, state, Checkpoints.ModelManifest.JsonOptions));
        var keep = new HashSet<string>([state.WeightsFile, state.BestWeightsFile, state.OptimizerFile], StringComparer.Ordinal);
        foreach (var old in Directory.EnumerateFiles(folder, "resume-e*"))
        {
            if (!keep.Contains(Path.GetFileName(old)))
            {
                File.Delete(old);
            }
        }
        return state;
    }

    public static void LoadWeights(string folder, ResumeState state, nn.Module trainable)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.WeightsFile));
        trainable.load_safetensors(stream, strict: true, leaveOpen: true);
    }

    public static Dictionary<string, Tensor> LoadBest(string folder, ResumeState state)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.BestWeightsFile));
        return Safetensors.LoadStateDict(stream, leaveOpen: true);
    }

    public static void LoadOptimizer(string folder, ResumeState state, optim.Optimizer optimizer)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.OptimizerFile));
        using var reader = new BinaryReader(stream);
        ((TorchSharp.Modules.OptimizerHelper)optimizer).load_state_dict(reader);
    }
}
