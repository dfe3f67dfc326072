using System.Text.Json;
using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Fitting;
using ServerlessClassifier.ModelCore.Plans;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>Where the epoch loop was after its last completed epoch, and the files that hold its weights and optimizer.</summary>
internal sealed record EpochState
{
    public required int CompletedEpochs { get; init; }
    public required int BestEpoch { get; init; }
    public required double BestValidationLoss { get; init; }
    /// <summary>The lowest validation criterion of any epoch, the start included (early stopping counts epochs since it).</summary>
    public required double LowestValidationLoss { get; init; }

    /// <summary>Epochs since <see cref="LowestValidationLoss"/> fell.</summary>
    public required int EpochsWithoutImprovement { get; init; }

    /// <summary>
    /// The start's (epoch 0's) per-image validation losses on the selection criterion: a later epoch is kept only when its own
    /// are clearly below them (the paired difference), so a resumed run needs them.
    /// </summary>
    public required IReadOnlyList<double> StartLosses { get; init; }
    public required bool StoppedEarly { get; init; }
    public required IReadOnlyList<EpochMetrics> History { get; init; }

    /// <summary>The trained network's weights after the last completed epoch.</summary>
    public string WeightsFile { get; init; } = "";

    /// <summary>The trained network's weights at the best epoch.</summary>
    public string BestWeightsFile { get; init; } = "";

    /// <summary>TorchSharp's optimizer state (moments, step counts).</summary>
    public string OptimizerFile { get; init; } = "";

    /// <summary>With weight averaging: how many epochs <see cref="AverageWeightsFile"/> averages.</summary>
    public int AveragedEpochs { get; init; }

    /// <summary>With weight averaging: the trained network's weights averaged over the completed epochs; empty without.</summary>
    public string AverageWeightsFile { get; init; } = "";

    /// <summary>With weight averaging: the start's (epoch 0's) weights, the other end of the interpolation; empty without.</summary>
    public string StartWeightsFile { get; init; } = "";
}

/// <summary>A run's <c>run.json</c>: its resolved plan, the data it started on, and its epoch state once an epoch completed.</summary>
internal sealed record RunRecord
{
    public const int CurrentFormat = 3;

    public int Format { get; init; } = CurrentFormat;

    public required TrainingPlan Plan { get; init; }

    /// <summary>The data set's hash (<see cref="ImageFolderDataset.DataHash"/>).</summary>
    public required string DataHash { get; init; }

    [JsonPropertyName("epochs")]
    public EpochState? Epochs { get; init; }
}

/// <summary>
/// A run's checkpoint folder: <c>run.json</c>, written when the run starts (its plan and data) and again after every epoch
/// (with the epoch state), and the epoch files it names (<c>resume-e0003-*.safetensors</c>, <c>*-optimizer.bin</c>). Every
/// file is written to a temporary name and renamed, <c>run.json</c> last, then older epochs' files are deleted: a crash or
/// cancellation at any point leaves the last complete epoch readable. The plan is the one thing a resume compares.
/// </summary>
public static class RunCheckpoint
{
    public const string FileName = "run.json";

    /// <summary>The plan a run in <paramref name="folder"/> was started with; null when there is no run there.</summary>
    /// <exception cref="TrainingException">The file is not a run record this build reads.</exception>
    public static TrainingPlan? ReadPlan(string folder) => Read(folder)?.Plan;

    /// <summary>
    /// What differs between the plan a run was started with and the one asked for now (both resolved); empty when a resume
    /// may continue.
    /// </summary>
    public static IReadOnlyList<PlanDifference> Differences(TrainingPlan started, TrainingPlan asked)
    {
        ArgumentNullException.ThrowIfNull(started);
        ArgumentNullException.ThrowIfNull(asked);
        return PlanSettings.Differences(started.Resolve(), asked.Resolve());
    }

    /// <summary>One sentence naming every difference, for a refused resume.</summary>
    public static string Describe(IReadOnlyList<PlanDifference> differences) =>
        string.Join("; ", differences.Select(d => $"{d.Name} was {d.Was}, not {d.Now}"));

    internal static RunRecord? Read(string folder)
    {
        var path = Path.Combine(folder, FileName);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            var record = JsonSerializer.Deserialize<RunRecord>(File.ReadAllBytes(path), TrainingPlan.JsonOptions)
                ?? throw new TrainingException($"{path} is empty.");
            if (record.Format != RunRecord.CurrentFormat)
            {
                throw new TrainingException($"{path} has format {record.Format}; this build reads {RunRecord.CurrentFormat}. Start a new run in another folder.");
            }
            // The epoch files are joined to this folder: a name with a separator, a drive, '.' or '..' would read outside it.
            if (record.Epochs is { } epochs
                && new[] { epochs.WeightsFile, epochs.BestWeightsFile, epochs.OptimizerFile }
                    .Concat(new[] { epochs.AverageWeightsFile, epochs.StartWeightsFile }.Where(f => f.Length > 0))
                    .FirstOrDefault(f => !ModelManifest.IsPlainFileName(f)) is { } bad)
            {
                throw new TrainingException($"{path} names the epoch file {JsonSerializer.Serialize(bad)}, which is not a plain file name in its folder; start a new run in another folder.");
            }
            return record;
        }
        catch (JsonException e)
        {
            throw new TrainingException($"{path} is not a run checkpoint this build reads ({e.Message}); start a new run in another folder.", e);
        }
    }

    /// <summary>Records a run's start: its plan and data, no epoch yet (a resume before the first epoch starts again).</summary>
    internal static RunRecord Begin(string folder, TrainingPlan plan, string dataHash)
    {
        Directory.CreateDirectory(folder);
        var record = new RunRecord { Plan = plan, DataHash = dataHash };
        Write(folder, record);
        foreach (var old in Directory.EnumerateFiles(folder, "resume-e*"))
        {
            File.Delete(old);
        }
        return record;
    }

    /// <summary>Writes an epoch's files, then <c>run.json</c> naming them, then deletes the previous epoch's files.</summary>
    internal static RunRecord WriteEpoch(string folder, RunRecord record, EpochState draft, nn.Module trainable, IReadOnlyDictionary<string, Tensor> best, optim.Optimizer optimizer,
        WeightAverage? average = null)
    {
        var prefix = $"resume-e{draft.CompletedEpochs:D4}";
        var state = draft with
        {
            WeightsFile = $"{prefix}-weights.safetensors",
            BestWeightsFile = $"{prefix}-best.safetensors",
            OptimizerFile = $"{prefix}-optimizer.bin",
            AveragedEpochs = average?.Epochs ?? 0,
            AverageWeightsFile = average?.Mean is null ? "" : $"{prefix}-average.safetensors",
            StartWeightsFile = average is null ? "" : $"{prefix}-start.safetensors",
        };
        if (average is not null)
        {
            AtomicFile.Write(Path.Combine(folder, state.StartWeightsFile), s => Safetensors.SaveStateDict(s, average.Start.ToDictionary(p => p.Key, p => p.Value), leaveOpen: true));
            if (average.Mean is { } mean)
            {
                AtomicFile.Write(Path.Combine(folder, state.AverageWeightsFile), s => Safetensors.SaveStateDict(s, mean.ToDictionary(p => p.Key, p => p.Value), leaveOpen: true));
            }
        }
        AtomicFile.Write(Path.Combine(folder, state.WeightsFile), s => trainable.save_safetensors(s, leaveOpen: true));
        AtomicFile.Write(Path.Combine(folder, state.BestWeightsFile), s => Safetensors.SaveStateDict(s, best.ToDictionary(p => p.Key, p => p.Value), leaveOpen: true));
        AtomicFile.Write(Path.Combine(folder, state.OptimizerFile), s =>
        {
            using var writer = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true);
            ((TorchSharp.Modules.OptimizerHelper)optimizer).save_state_dict(writer);
        });
        var next = record with { Epochs = state };
        Write(folder, next);
        var keep = new HashSet<string>([state.WeightsFile, state.BestWeightsFile, state.OptimizerFile, state.AverageWeightsFile, state.StartWeightsFile], StringComparer.Ordinal);
        foreach (var old in Directory.EnumerateFiles(folder, "resume-e*"))
        {
            if (!keep.Contains(Path.GetFileName(old)))
            {
                File.Delete(old);
            }
        }
        return next;
    }

    internal static void LoadWeights(string folder, EpochState state, nn.Module trainable)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.WeightsFile));
        trainable.load_safetensors(stream, strict: true, leaveOpen: true);
    }

    internal static Dictionary<string, Tensor> LoadBest(string folder, EpochState state)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.BestWeightsFile));
        return Safetensors.LoadStateDict(stream, leaveOpen: true);
    }

    /// <summary>The weight average a run with <see cref="EpochPlan.WeightInterpolation"/> was keeping (its start, and its mean once an epoch completed).</summary>
    internal static WeightAverage LoadAverage(string folder, EpochState state)
    {
        if (state.StartWeightsFile.Length == 0)
        {
            throw new TrainingException($"{Path.Combine(folder, FileName)} has no weight average; start a new run in another folder.");
        }
        Dictionary<string, Tensor> Load(string file)
        {
            using var stream = File.OpenRead(Path.Combine(folder, file));
            return Safetensors.LoadStateDict(stream, leaveOpen: true);
        }
        return WeightAverage.Restored(Load(state.StartWeightsFile), state.AverageWeightsFile.Length == 0 ? null : Load(state.AverageWeightsFile), state.AveragedEpochs);
    }

    internal static void LoadOptimizer(string folder, EpochState state, optim.Optimizer optimizer)
    {
        using var stream = File.OpenRead(Path.Combine(folder, state.OptimizerFile));
        using var reader = new BinaryReader(stream);
        ((TorchSharp.Modules.OptimizerHelper)optimizer).load_state_dict(reader);
    }

    private static void Write(string folder, RunRecord record) =>
        AtomicFile.Write(Path.Combine(folder, FileName), s => JsonSerializer.Serialize(s, record, TrainingPlan.JsonOptions));
}
