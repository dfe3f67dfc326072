using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// The TorchSharp engine: the reference for parity checks and the engine used while training. The
/// model is in eval mode and every call runs under inference mode in its own dispose scope, so
/// concurrent callers share the weights read-only and no native tensor outlives a call.
/// </summary>
public sealed class TorchSharpEngine : IClassifierEngine
{
    private readonly ImageClassifier model;
    private readonly bool ownsModel;

    public TorchSharpEngine(ImageClassifier model, int inputSize, bool ownsModel = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        this.model = model;
        this.ownsModel = ownsModel;
        InputSize = inputSize;
        model.eval();
    }

    public string Name => "torchsharp";

    public int NumClasses => model.NumClasses;

    public int InputSize { get; }

    public float[] PredictProbabilities(ReadOnlySpan<float> input, int batchSize)
    {
        var imageSize = 3 * InputSize * InputSize;
        if (batchSize < 1 || input.Length != batchSize * imageSize)
        {
            throw new ArgumentException($"Expected {batchSize} x {imageSize} floats, got {input.Length}.", nameof(input));
        }
        using var mode = inference_mode();
        using var scope = NewDisposeScope();
        var batch = tensor(input.ToArray(), [batchSize, 3, InputSize, InputSize]);
        var logits = model.forward(batch);
        return (model.HeadSpec.MultiLabel ? logits.sigmoid() : logits.softmax(1)).data<float>().ToArray();
    }

    public void Dispose()
    {
        if (ownsModel)
        {
            model.Dispose();
        }
    }
}
