using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>
/// How one run executes, beside its plan: where its checkpoint is and whether it continues one, the device, how many images
/// are decoded at a time, where head mode's features are stored, and where progress goes. None of it changes the model
/// (so none of it is compared on resume).
/// </summary>
public sealed record TrainingRun
{
    /// <summary>Where <c>run.json</c> (the plan and, after each epoch, the epoch state) and the epoch checkpoints go; null: none.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Continue from the checkpoint in <see cref="CheckpointDirectory"/> (a fresh start when it has no epoch yet); refused when made with another plan or data.</summary>
    public bool Resume { get; init; }

    /// <summary>
    /// With <see cref="Resume"/>: a checkpoint made with another plan or other data is replaced by a new run (said in the
    /// progress) instead of refused. For a job that runs the same command again after a failure (train --checkpoints).
    /// </summary>
    public bool ReplaceOtherRun { get; init; }

    /// <summary>
    /// Called with <see cref="CheckpointDirectory"/> each time it holds a new complete state (the run's start, every epoch),
    /// for example to copy it to storage that outlives the machine.
    /// </summary>
    public Action<string>? CheckpointSaved { get; init; }

    /// <summary><c>auto</c> (CUDA when <c>torch.cuda.is_available()</c>, else the CPU), <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "auto";

    /// <summary>Images decoded and run through a frozen network at a time (features, prefix, the int8 check).</summary>
    public int FeatureBatchSize { get; init; } = 32;

    /// <summary>Folder with ResNet18.onnx and ResNetPreprocess.onnx for <c>onnx-resnet18</c>; null: the files shipped with the program.</summary>
    public string? PretrainedDirectory { get; init; }

    /// <summary>With a head plan's feature cache: where the features are kept between runs.</summary>
    public FeatureStore? FeatureStore { get; init; }

    /// <summary>With <see cref="FeatureStore"/>: has the features the store lacks computed elsewhere first (the Functions app's features shards).</summary>
    public FeatureFanOut? FeatureFanOut { get; init; }

    public IProgress<TrainingProgress>? Progress { get; init; }
}
