using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Engine;

namespace ServerlessClassifier.Bench;

/// <summary>
/// The benchmark's served model, made as a user's would be: head mode (the default ImageNet backbone, the linear
/// probe) on a few hundred real emoji of nine categories, saved twice: with the verified fp32 graph, and with the
/// int8 graph the product makes from it and checks (<see cref="ServingGraphs"/>).
/// </summary>
internal sealed class ServingModels : IDisposable
{
    private ServingModels(TrainingResult result, string fp32Folder, string int8Folder, QuantizationSummary check)
    {
        Result = result;
        Fp32Folder = fp32Folder;
        Int8Folder = int8Folder;
        Check = check;
    }

    public TrainingResult Result { get; }

    public string Fp32Folder { get; }

    public string Int8Folder { get; }

    /// <summary>The int8 check (int8 vs fp32 on every training image, head mode's validation images).</summary>
    public QuantizationSummary Check { get; }

    public static async Task<ServingModels> TrainAsync(string imageFolder)
    {
        // Both graphs of one trained model: the engine packages the fp32 one, the int8 one is made and checked from it as
        // --precision int8 does (calibrated on the training images, checked on every image: head mode's validation images).
        var plan = new HeadPlan { Precision = new PrecisionOptions { Precision = PrecisionChoice.Fp32 } };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(imageFolder, TrainingEngine.DatasetOptionsFor(plan));
        var root = Path.Combine(Path.GetTempPath(), $"bench-models-{Guid.NewGuid():N}");
        var fp32Folder = Path.Combine(root, "fp32");
        var int8Folder = Path.Combine(root, "int8");
        var result = await new TrainingEngine().TrainAsync(plan, dataset, fp32Folder);
        var fp32 = await File.ReadAllBytesAsync(Path.Combine(fp32Folder, ModelCheckpoint.OnnxFileName));
        var int8 = await ServingGraphs.CreateAsync(fp32, result.Manifest.Labels, dataset.Train, [.. dataset.Train, .. dataset.Validation],
            new ModelCore.Imaging.ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage), new PrecisionOptions { Precision = PrecisionChoice.Int8 }, plan.Seed);
        if (int8.Refusal is { } refusal)
        {
            throw new InvalidOperationException($"The benchmark's int8 model failed its check: {refusal}.");
        }
        ModelCheckpoint.SaveForServing(result.Model, result.Manifest with { Files = [] }, int8Folder, int8, result.MeanImage, result.OutOfDistribution);
        return new ServingModels(result, fp32Folder, int8Folder, int8.Quantization!);
    }

    public void Dispose()
    {
        Result.Dispose();
        Directory.Delete(Path.GetDirectoryName(Fp32Folder)!, recursive: true);
    }
}
