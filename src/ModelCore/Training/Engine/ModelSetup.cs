using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Engine;

/// <summary>The classifier a plan trains, with what describes its input and where its backbone came from. Owns the model until it is handed on.</summary>
internal sealed record ModelSetup(ImageClassifier Model, PreprocessingConfig Preprocessing, float[]? MeanImage, BackboneReference Backbone, string BackboneSource)
{
    /// <summary>The backbone's id in the manifest (its architecture's name).</summary>
    public string BackboneId => Backbone.Architecture.Name;

    /// <summary>
    /// The backbone the resolved plan names, with its pretrained weights (or random ones for <c>random:</c>), and a new linear
    /// head reading the plan's pooled stages; seeded by the plan, so the head's initialisation is reproducible.
    /// </summary>
    /// <param name="plan">A resolved plan (<see cref="TrainingPlan.Resolve"/>).</param>
    /// <param name="classes">Output classes.</param>
    /// <param name="pretrainedDirectory">Folder with ResNet18.onnx and ResNetPreprocess.onnx for the default backbone; null: <see cref="OnnxResNetImporter.DefaultDirectory"/>.</param>
    /// <param name="multiLabel">A multi-label head (sigmoid outputs).</param>
    public static ModelSetup Create(TrainingPlan plan, int classes, string? pretrainedDirectory, bool multiLabel = false)
    {
        var reference = plan.ParseBackbone();
        var head = HeadSpec.Linear(classes) with { PooledStages = plan.PooledStages ?? 1, MultiLabel = multiLabel };
        manual_seed(plan.Seed);
        switch (reference.Source)
        {
            case Backbones.BackboneSource.Default:
            {
                var directory = pretrainedDirectory ?? OnnxResNetImporter.DefaultDirectory;
                var backbone = OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName));
                manual_seed(plan.Seed);
                var meanImage = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
                return new ModelSetup(new ImageClassifier(backbone, head), OnnxResNetImporter.Preprocessing, meanImage, reference,
                    "Microsoft.ML.DnnImageFeaturizer.ResNet18 0.23.1 (ResNet18.onnx, ImageNet)");
            }
            case Backbones.BackboneSource.Random:
                return new ModelSetup(new ImageClassifier(reference.Architecture.Create(), head), reference.Architecture.Preprocessing(plan.EffectiveInputSize), null,
                    reference, "random initialisation (no pretrained weights)");
            default:
            {
                var loaded = TorchVisionWeights.CreateClassifier(reference.Value, head);
                return new ModelSetup(loaded.Model, reference.Architecture.Preprocessing(plan.EffectiveInputSize), null, reference,
                    $"torchvision weights {Path.GetFileName(reference.Value)}");
            }
        }
    }
}
