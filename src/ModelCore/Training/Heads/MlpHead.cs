using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Heads;

/// <summary>Two linear layers with ReLU and dropout between them.</summary>
public sealed class MlpHead : ClassifierHead
{
    private readonly Linear fc1;
    private readonly Dropout dropout;
    private readonly Linear fc2;

    public MlpHead(int numFeatures, HeadSpec spec) : base(nameof(MlpHead), spec.NumClasses)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(spec.HiddenSize, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(spec.Dropout);
        fc1 = Linear(numFeatures, spec.HiddenSize);
        dropout = Dropout(spec.Dropout);
        fc2 = Linear(spec.HiddenSize, spec.NumClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return fc2.call(dropout.call(functional.relu(fc1.call(input)))).MoveToOuterDisposeScope();
    }
}
