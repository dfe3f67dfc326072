using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessClassifier.ModelCore.Export;

namespace ServerlessClassifier.ModelCore.Prefix;

/// <summary>
/// Runs a fine-tune's frozen prefix (<see cref="OnnxExport.ExportPrefix"/>) on ONNX Runtime, with every
/// core: no autograd, and about twice as fast as TorchSharp's eager forward pass on a CPU.
/// </summary>
internal sealed class PrefixEngine : IDisposable
{
    private readonly InferenceSession session;
    private readonly RunOptions runOptions = new();
    private readonly int inputSize;

    public PrefixEngine(byte[] onnx, int inputSize)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = Environment.ProcessorCount,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        session = new InferenceSession(onnx, options);
        this.inputSize = inputSize;
    }

    /// <summary>The prefix output of a batch of preprocessed images, and its shape (C, H, W).</summary>
    public (float[] Output, int[] Shape) Run(ReadOnlySpan<float> input, int batchSize)
    {
        var imageLength = 3 * inputSize * inputSize;
        if (batchSize < 1 || input.Length != batchSize * imageLength)
        {
            throw new ArgumentException($"Expected {batchSize} x {imageLength} floats, got {input.Length}.", nameof(input));
        }
        long[] shape = [batchSize, 3, inputSize, inputSize];
        unsafe
        {
            fixed (float* data = input)
            {
                using var value = OrtValue.CreateTensorValueWithData(OrtMemoryInfo.DefaultInstance, TensorElementType.Float, shape, (IntPtr)data, (long)input.Length * sizeof(float));
                using var results = session.Run(runOptions, [OnnxExport.InputName], [value], [OnnxExport.PrefixName]);
                var outputShape = results[0].GetTensorTypeAndShape().Shape;
                return (results[0].GetTensorDataAsSpan<float>().ToArray(), [.. outputShape.Skip(1).Select(d => (int)d)]);
            }
        }
    }

    public void Dispose()
    {
        session.Dispose();
        runOptions.Dispose();
    }
}
