using ServerlessClassifier.Tests.Common;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>
/// The reference files written by tests/fixtures/make_torchvision_fixture.py (PyTorch 1.13,
/// torchvision 0.14): a resnet18(num_classes=5) state_dict and PyTorch's eval-mode outputs on a fixed
/// batch, made once per machine into the reference cache (<see cref="ReferencePython.Cached"/>) and again when
/// the script changes. Without Debian's python3-torch the tests that read them fail, saying so.
/// </summary>
internal static class TorchVisionFixture
{
    private static readonly Lazy<string> Folder = new(() => ReferencePython.Cached("make_torchvision_fixture.py"));

    public static string Directory => Folder.Value;

    public static string WeightsPath => Path.Combine(Directory, "resnet18_5classes.pth");

    public const int NumClasses = 5;

    /// <summary>PyTorch's input, 512-d pooled features and logits; the caller disposes them.</summary>
    public static (Tensor Input, Tensor Features, Tensor Logits) ReadReference()
    {
        var table = PyTorchUnpickler.UnpickleStateDict(Path.Combine(Directory, "reference.pth"));
        return ((Tensor)table["input"]!, (Tensor)table["features"]!, (Tensor)table["logits"]!);
    }

    public static float MaxAbsDifference(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        using var scope = NewDisposeScope();
        return (a - b).abs().max().item<float>();
    }
}
