using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inputs;
using ServerlessClassifier.ModelCore.Runtime;
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

    static EngineRuns()
    {
        DeleteLeftovers();
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(Root, recursive: true);
            }
            catch (IOException)
            {
            }
        };
    }

    /// <summary>
    /// Deletes the roots of earlier test processes that are gone: the test host is often stopped before its exit handler
    /// has deleted its root (about 3.4 GB after the every-run suite), so without this every run left one in the temp folder.
    /// </summary>
    private static void DeleteLeftovers()
    {
        const string prefix = "engine-tests-";
        foreach (var folder in Directory.EnumerateDirectories(Path.GetTempPath(), prefix + "*"))
        {
            if (!int.TryParse(Path.GetFileName(folder).AsSpan(prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out var pid)
                || pid == Environment.ProcessId || IsRunning(pid))
            {
                continue;
            }

            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    private static bool IsRunning(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

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

    /// <summary>The floating-point weights the engine starts a plan from (the same seed builds the same model).</summary>
    public static Dictionary<string, float[]> InitialWeights(TrainingPlan plan, int classes)
    {
        TorchRuntime.EnsureInitialized();
        using var fresh = ModelSetup.Create(plan.Resolve(), classes, null).Model;
        return fresh.state_dict().Where(p => p.Value.is_floating_point()).ToDictionary(p => p.Key, p => p.Value.data<float>().ToArray());
    }

    /// <summary>
    /// The frozen backbone's features of a data set as head mode computes them (the model the plan starts from, in eval
    /// mode), with the model and its preprocessing to check them against. Dispose the model.
    /// </summary>
    public static async Task<(ModelSetup Setup, ImagePreprocessor Preprocessor, FeatureCache Cache)> FeaturesAsync(TrainingPlan plan, ImageFolderDataset dataset, int batchSize, bool flip = false)
    {
        TorchRuntime.EnsureInitialized();
        var setup = ModelSetup.Create(plan.Resolve(), dataset.Labels.Count, null);
        setup.Model.eval();
        var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
        var loader = new ImageLoader(dataset, new ImageDecoder(), preprocessor.DecodeShorterSide, [], null);
        var cache = await new FeatureExtraction(loader).ExtractFeaturesAsync(setup.Model, preprocessor, batchSize, default, flip: flip);
        return (setup, preprocessor, cache);
    }

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
