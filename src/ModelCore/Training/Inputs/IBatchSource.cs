using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>Where training batches come from: cached features (head mode) or augmented images.</summary>
internal interface IBatchSource : IDisposable
{
    int[] TrainLabels { get; }

    int[] ValidationLabels { get; }

    IReadOnlyList<string> ValidationSources { get; }

    /// <summary>A few preprocessed validation images, to verify the ONNX export with; empty where the source keeps none.</summary>
    IReadOnlyList<float[]> VerificationInputs { get; }

    /// <summary>Inputs and targets of one training batch, on the device, in the caller's dispose scope.</summary>
    (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random);

    /// <summary>Validation inputs [start, start + count), on the device, in the caller's dispose scope.</summary>
    Tensor ValidationBatch(int start, int count);
}
