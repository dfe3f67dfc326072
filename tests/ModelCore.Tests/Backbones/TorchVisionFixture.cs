using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

/// <summary>
/// The reference files written by tests/fixtures/make_torchvision_fixture.py (PyTorch 1.13,
/// torchvision 0.14): a resnet18(num_classes=5) state_dict and PyTorch's eval-mode outputs on a fixed
/// batch. scripts/test.sh generates them and sets the variable; there is no silent skip.
/// </summary>
internal static class TorchVisionFixture
{
    public const string DirectoryVariable = "CLASSIFIER_TEST_TORCHVISION_FIXTURE";

    public static string Directory =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } value
            ? System.IO.Directory.Exists(value)
                ? value
                : throw new InvalidOperationException($"{DirectoryVariable} points to '{value}', which does not exist. Run the tests with scripts/test.sh, which generates it.")
            : throw new InvalidOperationException(
                $"{DirectoryVariable} is not set. Run the tests with scripts/test.sh, which generates the torchvision reference files "
                + "(tests/fixtures/make_torchvision_fixture.py) and sets it.");

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
