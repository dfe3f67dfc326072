using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace ServerlessClassifier.ModelCore.Heads;

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
