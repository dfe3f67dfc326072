using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Heads;

/// <summary>Which head sits on the pooled features.</summary>
public enum HeadKind
{
    /// <summary>One linear layer (the PyTorch recipe's replaced <c>fc</c>).</summary>
    Linear,

    /// <summary>Linear, ReLU, dropout, linear.</summary>
    Mlp,
}

/// <summary>A head's shape; stored in the manifest so a checkpoint rebuilds the same module.</summary>
public sealed record HeadSpec(HeadKind Kind, int NumClasses, int HiddenSize = 512, double Dropout = 0.2)
{
    public static HeadSpec Linear(int numClasses) => new(HeadKind.Linear, numClasses);

    public ClassifierHead Create(int numFeatures) => Kind switch
    {
        HeadKind.Linear => new LinearHead(numFeatures, NumClasses),
        HeadKind.Mlp => new MlpHead(numFeatures, this),
        _ => throw new InvalidOperationException($"Unknown head kind {Kind}."),
    };
}

/// <summary>Maps pooled features (N, F) to logits (N, NumClasses).</summary>
public abstract class ClassifierHead(string name, int numClasses) : Module<Tensor, Tensor>(name)
{
    public int NumClasses { get; } = numClasses > 0
        ? numClasses
        : throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "a head needs at least one class");
}

/// <summary>A single linear layer; its parameters are <c>fc.weight</c> and <c>fc.bias</c> as in torchvision.</summary>
public sealed class LinearHead : ClassifierHead
{
    private readonly Linear fc;

    public LinearHead(int numFeatures, int numClasses) : base(nameof(LinearHead), numClasses)
    {
        fc = Linear(numFeatures, numClasses);
        RegisterComponents();
    }

    public override Tensor forward(Tensor input) => fc.call(input);
}

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
