using Microsoft.Extensions.Logging;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
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

    private static IEnumerable<string> RandomArchitectures => BackboneCatalog.TorchVisionIds;

    internal ModelSetup CreateModel(TrainingOptions options, int numClasses)
    {
        var head = options.HeadSpec(numClasses);
        // Seed before building: the head's (and a random backbone's) initialisation is then reproducible.
        manual_seed(options.Seed);
        if (options.Backbone == BackboneCatalog.DefaultId)
        {
            if (options.InputSize is { } size && ResNetArchitecture.OnnxResNet18.InputSizeProblem(size) is { } problem)
            {
                throw new ArgumentException($"InputSize {size}: {problem}.", nameof(options));
            }
            var directory = options.PretrainedDirectory ?? OnnxResNetImporter.DefaultDirectory;
            var backbone = OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName));
            manual_seed(options.Seed);
            var meanImage = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
            return new ModelSetup(new ImageClassifier(backbone, head), OnnxResNetImporter.Preprocessing, meanImage, BackboneCatalog.DefaultId,
                "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (ResNet18.onnx, ImageNet)");
        }
        if (options.Backbone.StartsWith(RandomBackbonePrefix, StringComparison.Ordinal))
        {
            var id = options.Backbone[RandomBackbonePrefix.Length..];
            if (!BackboneCatalog.TorchVisionIds.Contains(id))
            {
                throw new ArgumentException($"Backbone \"{options.Backbone}\": random initialisation takes one of {string.Join(", ", RandomArchitectures.Select(a => RandomBackbonePrefix + a))}.", nameof(options));
            }
            var architecture = BackboneCatalog.Architecture(id);
            var preprocessing = Preprocessing(options, architecture);
            LogRandomBackbone(id);
            var model = new ImageClassifier(architecture.Create(), Fit(architecture, head));
            return new ModelSetup(model, preprocessing, null, id, "random initialisation (no pretrained weights)");
        }
        if (BackboneCatalog.Ids.Contains(options.Backbone))
        {
            throw new ArgumentException(
                $"Backbone \"{options.Backbone}\" names an architecture, not pretrained weights: pass {BackboneCatalog.DefaultId} (the ImageNet default) or the path of a torchvision " +
                $"{options.Backbone} weights file (.pth or .safetensors); {RandomBackbonePrefix}{options.Backbone} trains on random weights (for tests only).", nameof(options));
        }
        if (File.Exists(options.Backbone))
        {
            // The architecture from the file's names and shapes first (its tensors are not read), so a wrong input size fails at once.
            var architecture = TorchVisionWeights.DetectArchitecture(options.Backbone);
            var preprocessing = Preprocessing(options, architecture);
            var loaded = TorchVisionWeights.CreateClassifier(options.Backbone, Fit(architecture, head));
            return new ModelSetup(loaded.Model, preprocessing, null, architecture.Name, $"torchvision weights {Path.GetFileName(options.Backbone)}");
        }
        throw new ArgumentException($"Backbone \"{options.Backbone}\" is neither {BackboneCatalog.DefaultId} nor an existing weights file (.pth or .safetensors).", nameof(options));
    }

    /// <summary>The architecture's preprocessing at the options' input size (224 by default), which must be one the architecture takes.</summary>
    private static PreprocessingConfig Preprocessing(TrainingOptions options, BackboneArchitecture architecture)
    {
        var size = options.InputSize ?? 224;
        return architecture.InputSizeProblem(size) is { } problem
            ? throw new ArgumentException($"InputSize {size}: {problem}.", nameof(options))
            : architecture.Preprocessing(size);
    }

    /// <summary>The head the architecture can carry; says so when it reads fewer pooled stages than asked (only ResNets pool several).</summary>
    private HeadSpec Fit(BackboneArchitecture architecture, HeadSpec head)
    {
        var fitted = architecture.Fit(head);
        if (fitted.PooledStages != head.PooledStages)
        {
            LogPooledStages(architecture.Name, architecture.ReplacedLayer, architecture.NumFeatures, head.PooledStages);
        }
        return fitted;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Backbone {Backbone}: the head reads the {Features} inputs of {Layer}, the layer it replaces (pooling {Asked} stages applies to ResNets only)")]
    private partial void LogPooledStages(string backbone, string layer, int features, int asked);
}
