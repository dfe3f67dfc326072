using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using static TorchSharp.torch;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// Small served models with known answers: a random torchvision ResNet-18 at 64px whose linear head has
/// zero weights and a bias favouring one class, so every image gets that label with a known probability.
/// </summary>
public static class TestModels
{
    public static readonly string[] Labels = ["alpha", "beta", "gamma"];

    public static PreprocessingConfig Preprocessing { get; } = PreprocessingConfig.TorchVision with { InputSize = 64, ResizeSize = 64 };

    /// <summary>Creates the model (as a fresh, untrained-looking classifier) that always answers <paramref name="winner"/>.</summary>
    public static (ImageClassifier Model, ModelManifest Manifest) Create(int winner, IReadOnlyList<string>? labels = null)
    {
        TorchRuntime.EnsureInitialized();
        labels ??= Labels;
        manual_seed(11);
        var model = new ImageClassifier(BackboneCatalog.Create("resnet18"), HeadSpec.Linear(labels.Count));
        using (no_grad())
        {
            foreach (var (name, parameter) in model.named_parameters())
            {
                if (name == "head.fc.weight")
                {
                    parameter.zero_();
                }
                else if (name == "head.fc.bias")
                {
                    var bias = new float[labels.Count];
                    bias[winner] = 4;
                    parameter.copy_(tensor(bias));
                }
            }
        }
        model.eval();
        var manifest = new ModelManifest
        {
            Backbone = "resnet18",
            Head = HeadSpec.Linear(labels.Count),
            Labels = labels,
            Preprocessing = Preprocessing,
            ConfidenceThreshold = 0.3,
        };
        return (model, manifest);
    }

    /// <summary>Writes a servable model folder (weights, verified model.onnx, manifest) that always answers <paramref name="winner"/>.</summary>
    public static string SaveFolder(string folder, int winner)
    {
        var (model, manifest) = Create(winner);
        using (model)
        {
            ModelCheckpoint.SaveForServing(model, manifest, folder, VerificationInputs(), null);
        }
        return folder;
    }

    public static List<float[]> VerificationInputs()
    {
        var preprocessor = new ImagePreprocessor(Preprocessing);
        var decoder = new ImageDecoder();
        return [.. TestAssets.SampleEmoji(2).Select(f =>
        {
            using var image = decoder.Decode(File.ReadAllBytes(f));
            return preprocessor.Preprocess(image);
        })];
    }

    /// <summary>The probability the fixed-bias model gives its winning class: softmax of [4, 0, 0, ...].</summary>
    public static double WinnerProbability(int classes) => Math.Exp(4) / (Math.Exp(4) + classes - 1);
}

/// <summary>A temporary folder deleted at the end of a test.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "trainjob-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Model folders shared by the tests of a class (building them costs an ONNX export each).</summary>
public sealed class ModelFolders : IDisposable
{
    private readonly TempFolder root = new();

    public ModelFolders()
    {
        AlwaysGamma = TestModels.SaveFolder(root.Combine("gamma"), 2);
        AlwaysAlpha = TestModels.SaveFolder(root.Combine("alpha"), 0);
    }

    public string AlwaysGamma { get; }

    public string AlwaysAlpha { get; }

    public void Dispose() => root.Dispose();
}
