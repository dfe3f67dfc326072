using System.Diagnostics;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp;
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
        if (BackboneCatalog.Ids.Contains(options.Backbone))
        {
            LogRandomBackbone(options.Backbone);
            return new ModelSetup(new ImageClassifier(BackboneCatalog.Create(options.Backbone), head), preprocessing, null, options.Backbone, "random initialisation (no pretrained weights)");
        }
        if (File.Exists(options.Backbone))
        {
            var loaded = TorchVisionWeights.CreateClassifier(options.Backbone, head);
            var id = ((TorchVisionResNet)loaded.Model.Backbone).Architecture.Name;
            return new ModelSetup(loaded.Model, preprocessing, null, id, $"torchvision weights {Path.GetFileName(options.Backbone)}");
        }
        throw new ArgumentException($"Backbone \"{options.Backbone}\" is neither a known id ({string.Join(", ", BackboneCatalog.Ids)}) nor an existing weights file.", nameof(options));
    }

    /// <summary>torchvision's evaluation transform for a given input size: shorter side to size / 0.875, centre crop, ImageNet mean/std.</summary>
    public static PreprocessingConfig TorchVisionPreprocessing(int inputSize) =>
        PreprocessingConfig.TorchVision with { InputSize = inputSize, ResizeSize = (int)Math.Round(inputSize / 0.875) };

}
