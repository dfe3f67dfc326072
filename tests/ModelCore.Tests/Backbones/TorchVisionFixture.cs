using System.Diagnostics;
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

    /// <summary>
    /// Runs a script from tests/fixtures with Debian's interpreter (the one that sees python3-torch)
    /// and returns its last output line; a non-zero exit fails the test with its stderr.
    /// </summary>
    public static string RunPython(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(FixturesSourceDirectory(), script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{script} exited with {process.ExitCode}: {stderr.Result}");
        return stdout.Trim().Split('\n')[^1];
    }

    private static string FixturesSourceDirectory()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (File.Exists(Path.Combine(candidate, "make_torchvision_fixture.py")))
            {
                return candidate;
            }
        }
        throw new InvalidOperationException($"tests/fixtures not found above {AppContext.BaseDirectory}.");
    }

    public static float MaxAbsDifference(Tensor a, Tensor b)
    {
        Assert.Equal(a.shape, b.shape);
        using var scope = NewDisposeScope();
        return (a - b).abs().max().item<float>();
    }
}
