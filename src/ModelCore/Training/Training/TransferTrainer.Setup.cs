using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>The classifier to train and what describes its input.</summary>
internal sealed record ModelSetup(ImageClassifier Model, PreprocessingConfig Preprocessing, float[]? MeanImage, string BackboneId, string BackboneSource);


/// <summary>Builds the model to train: the backbone with its pretrained weights, a new head, and its preprocessing.</summary>
public sealed partial class TransferTrainer
{
    /// <summary>Prefix of a backbone id that asks for random weights (<c>random:resnet18</c>): for tests, never by accident.</summary>
    public const string RandomBackbonePrefix = "random:";

    private static IEnumerable<string> RandomArchitectures => BackboneCatalog.Ids.Where(id => id != BackboneCatalog.DefaultId);

    internal ModelSetup CreateModel(TrainingOptions options, int numClasses)
    {
        var head = options.HeadSpec(numClasses);
        // Seed before building: the head's (and a random backbone's) initialisation is then reproducible.
        manual_seed(options.Seed);
        if (options.Backbone == BackboneCatalog.DefaultId)
        {
            if (options.InputSize is { } size && size != OnnxResNetImporter.Preprocessing.InputSize)
            {
                throw new ArgumentException($"{BackboneCatalog.DefaultId} takes {OnnxResNetImporter.Preprocessing.InputSize}x{OnnxResNetImporter.Preprocessing.InputSize} inputs only (its mean image is that size); InputSize {size} is not possible.", nameof(options));
            }
            var directory = options.PretrainedDirectory ?? OnnxResNetImporter.DefaultDirectory;
            var backbone = OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName));
            manual_seed(options.Seed);
            var meanImage = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
            return new ModelSetup(new ImageClassifier(backbone, head), OnnxResNetImporter.Preprocessing, meanImage, BackboneCatalog.DefaultId,
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (ResNet18.onnx, ImageNet)");
        }
        var preprocessing = TorchVisionPreprocessing(options.InputSize ?? 224);
        if (options.Backbone.StartsWith(RandomBackbonePrefix, StringComparison.Ordinal))
        {
            var architecture = options.Backbone[RandomBackbonePrefix.Length..];
            if (!BackboneCatalog.Ids.Contains(architecture) || architecture == BackboneCatalog.DefaultId)
            {
                throw new ArgumentException($"Backbone \"{options.Backbone}\": random initialisation takes one of {string.Join(", ", RandomArchitectures.Select(a => RandomBackbonePrefix + a))}.", nameof(options));
            }
            LogRandomBackbone(architecture);
            return new ModelSetup(new ImageClassifier(BackboneCatalog.Create(architecture), head), preprocessing, null, architecture, "random initialisation (no pretrained weights)");
        }
        if (BackboneCatalog.Ids.Contains(options.Backbone))
        {
            throw new ArgumentException(
                $"Backbone \"{options.Backbone}\" names an architecture, not pretrained weights: pass {BackboneCatalog.DefaultId} (the ImageNet default) or the path of a torchvision " +
                $"{options.Backbone} weights file (.pth or .safetensors); {RandomBackbonePrefix}{options.Backbone} trains on random weights (for tests only).", nameof(options));
        }
        if (File.Exists(options.Backbone))
        {
            var loaded = TorchVisionWeights.CreateClassifier(options.Backbone, head);
            var id = ((TorchVisionResNet)loaded.Model.Backbone).Architecture.Name;
            return new ModelSetup(loaded.Model, preprocessing, null, id, $"torchvision weights {Path.GetFileName(options.Backbone)}");
        }
        throw new ArgumentException($"Backbone \"{options.Backbone}\" is neither {BackboneCatalog.DefaultId} nor an existing weights file (.pth or .safetensors).", nameof(options));
    }

    /// <summary>torchvision's evaluation transform for a given input size: shorter side to size / 0.875, centre crop, ImageNet mean/std.</summary>
    public static PreprocessingConfig TorchVisionPreprocessing(int inputSize) =>
        PreprocessingConfig.TorchVision with { InputSize = inputSize, ResizeSize = (int)Math.Round(inputSize / 0.875) };

}
