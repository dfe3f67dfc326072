using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Results;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>
/// Runs the real training engine in tests: small plans (a random-init ResNet-18 at 64 px, serving fp32 so no int8 graph is
/// made unless a test asks) and a model folder per run, deleted when the test process exits.
/// </summary>
internal static class EngineRuns
{
    private static readonly string Root = Path.Combine(Path.GetTempPath(), $"engine-tests-{Environment.ProcessId}");

    static EngineRuns() => AppDomain.CurrentDomain.ProcessExit += (_, _) =>
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    };

    public static PrecisionOptions Fp32 { get; } = new() { Precision = PrecisionChoice.Fp32 };

    public static HeadPlan Head { get; } = new() { Backbone = "random:resnet18", InputSize = 64, Precision = Fp32 };

    public static FinetunePlan Finetune { get; } = new() { Backbone = "random:resnet18", InputSize = 64, BatchSize = 8, Epochs = 3, Patience = 0, Precision = Fp32 };

    public static FullPlan Full { get; } = new() { Backbone = "random:resnet18", InputSize = 64, BatchSize = 8, Epochs = 3, Patience = 0, Precision = Fp32 };

    /// <summary>A new, empty folder under the test run's root.</summary>
    public static string NewFolder(string name = "run") => Path.Combine(Root, $"{name}-{Guid.NewGuid():N}");

    public static Task<ImageFolderDataset> LoadAsync(string root, TrainingPlan plan) => ImageFolderDataset.FromDirectoryAsync(root, TrainingEngine.DatasetOptionsFor(plan));

    /// <summary>Trains with the real engine into a new model folder.</summary>
    public static Task<TrainingResult> TrainAsync(TrainingPlan plan, ImageFolderDataset dataset, IProgress<TrainingProgress>? progress = null, TrainingRun? run = null,
        CancellationToken cancellationToken = default) =>
        new TrainingEngine().TrainAsync(plan, dataset, NewFolder(), (run ?? new TrainingRun()) with { Progress = progress ?? run?.Progress }, cancellationToken);

    /// <summary>Progress messages (the Info lines) collected as they come.</summary>
    public static (IProgress<TrainingProgress> Progress, List<string> Messages) Messages()
    {
        var messages = new List<string>();
        return (new SyncProgress<TrainingProgress>(p =>
        {
            if (p.Message is { } m)
            {
                lock (messages)
                {
                    messages.Add(m);
                }
            }
        }), messages);
    }
}
