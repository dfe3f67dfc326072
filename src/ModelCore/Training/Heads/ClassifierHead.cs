using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Heads;

/// <summary>Maps pooled features (N, F) to logits (N, NumClasses).</summary>
public abstract class ClassifierHead(string name, int numClasses) : Module<Tensor, Tensor>(name)
{
    public int NumClasses { get; } = numClasses > 0
        ? numClasses
        : throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, "a head needs at least one class");
}
