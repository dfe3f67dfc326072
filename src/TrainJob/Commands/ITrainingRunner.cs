using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.TrainJob.Reports;
using SkippedImage = ServerlessClassifier.ModelCore.Training.SkippedImage;

namespace ServerlessClassifier.TrainJob.Commands;

/// <summary>The pretrained backbone: a catalog id (e.g. <c>onnx-resnet18</c>), or a torchvision weights file (.pth/.safetensors) whose architecture the engine detects.</summary>
public sealed record BackboneChoice(string? Id, string? WeightsFile)
{
    public override string ToString() => WeightsFile ?? Id ?? "(default)";
}

/// <summary>Everything the CLI has validated and resolved for one training run.</summary>
public sealed record TrainingRunRequest
{
    /// <summary>A local ImageFolder root: <c>&lt;root&gt;/&lt;label&gt;/&lt;file&gt;</c> (blob data is downloaded here first).</summary>
    public required string DataFolder { get; init; }

    /// <summary>Where the engine keeps its resume checkpoint (<c>&lt;output&gt;/checkpoints</c>); kept when a run is interrupted.</summary>
    public required string CheckpointDirectory { get; init; }

    public required TrainingMode Mode { get; init; }

    /// <summary>Backbone stages to train in <see cref="TrainingMode.Finetune"/> (e.g. <c>layer4</c>); empty otherwise.</summary>
    public IReadOnlyList<string> UnfreezeStages { get; init; } = [];

    public required int Epochs { get; init; }

    public required int BatchSize { get; init; }

    /// <summary>The head's learning rate; null = the engine's default for the mode.</summary>
    public double? LearningRate { get; init; }

    public required int Seed { get; init; }

    /// <summary>Fraction of each class held out for validation, in (0, 1).</summary>
    public required double ValidationSplit { get; init; }

    /// <summary><c>cpu</c> or <c>cuda</c> (<c>--device auto</c> is resolved by the CLI).</summary>
    public required string Device { get; init; }

    public required BackboneChoice Backbone { get; init; }

    /// <summary>Continue from the checkpoint in <see cref="CheckpointDirectory"/>.</summary>
    public bool Resume { get; init; }
}

/// <summary>
/// Progress of a run. <see cref="Phase"/> names a step (e.g. <c>features</c> for a frozen-feature cache,
/// <c>train</c> for epochs); <see cref="Step"/> of <see cref="Steps"/> is the progress within the current
/// epoch (or the whole phase when it has no epochs). <see cref="EpochDone"/> is set once per finished epoch.
/// </summary>
public sealed record TrainingRunProgress(string Phase, int Epoch, int Epochs, int Step, int Steps)
{
    public EpochMetrics? EpochDone { get; init; }

    public string? Message { get; init; }
}

/// <summary>What a finished run hands back to the CLI, which saves, reports and publishes it.</summary>
public sealed record TrainingRunResult : IDisposable
{
    /// <summary>The trained model (the best epoch's weights), in eval mode; owned by this result.</summary>
    public required ImageClassifier Model { get; init; }

    /// <summary>The manifest draft: backbone, head, labels, preprocessing, training summary, metrics (files are filled when saved).</summary>
    public required ModelManifest Manifest { get; init; }

    /// <summary>The mean image the preprocessing names (the default ONNX ResNet's), else null.</summary>
    public float[]? MeanImage { get; init; }

    public required IReadOnlyList<EpochMetrics> History { get; init; }

    public IReadOnlyList<ValidationPrediction> ValidationPredictions { get; init; } = [];

    /// <summary>The default confidence threshold chosen for the model (stored in the manifest).</summary>
    public double ConfidenceThreshold { get; init; }

    public required DataCounts Data { get; init; }

    public IReadOnlyList<SkippedImage> Skipped { get; init; } = [];

    public int? BestEpoch { get; init; }

    public IReadOnlyList<string> Notes { get; init; } = [];

    public void Dispose() => Model.Dispose();
}

/// <summary>
/// The seam between the CLI and the training engine (ModelCore/Training): the CLI parses and validates,
/// prepares the data and the output folder, shows progress, then saves, reports and publishes what this returns.
/// </summary>
public interface ITrainingRunner
{
    /// <summary>Trains; throws <see cref="OperationCanceledException"/> when cancelled (leaving its checkpoint in place).</summary>
    Task<TrainingRunResult> TrainAsync(TrainingRunRequest request, IProgress<TrainingRunProgress> progress, CancellationToken cancellationToken);
}

/// <summary>The runner <c>train</c> uses unless a host passes another. The one place the training engine is wired in.</summary>
public static class TrainingRunners
{
    public static ITrainingRunner Default { get; } = new EngineTrainingRunner();
}
