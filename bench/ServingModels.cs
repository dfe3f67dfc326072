using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Training;

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
        var options = new TrainingOptions();
        var dataset = await ImageFolderDataset.FromDirectoryAsync(imageFolder, options.ToDatasetOptions());
        var result = await new TransferTrainer().TrainAsync(dataset, options, progress: null, checkpointDirectory: null);
        var preprocessing = result.Manifest.Preprocessing;
        var fp32 = OnnxExport.ExportVerified(result.Model, preprocessing.InputSize, result.VerificationInputs);
        var int8 = await ServingGraphs.CreateAsync(fp32.Onnx, result.Manifest.Labels, dataset, [.. dataset.Train, .. dataset.Validation],
            new ModelCore.Imaging.ImagePreprocessor(preprocessing, result.MeanImage), new PrecisionOptions { Precision = PrecisionChoice.Int8 });
        if (int8.Refusal is { } refusal)
        {
            throw new InvalidOperationException($"The benchmark's int8 model failed its check: {refusal}.");
        }
        var root = Path.Combine(Path.GetTempPath(), $"bench-models-{Guid.NewGuid():N}");
        var fp32Folder = Path.Combine(root, "fp32");
        var int8Folder = Path.Combine(root, "int8");
        ModelCheckpoint.SaveForServing(result.Model, result.Manifest, fp32Folder, new ServingGraph(fp32.Onnx, ModelPrecision.Fp32, null), result.MeanImage, result.OutOfDistribution);
        ModelCheckpoint.SaveForServing(result.Model, result.Manifest, int8Folder, int8, result.MeanImage, result.OutOfDistribution);
        return new ServingModels(result, fp32Folder, int8Folder, int8.Quantization!);
    }

    public void Dispose()
    {
        Result.Dispose();
        Directory.Delete(Path.GetDirectoryName(Fp32Folder)!, recursive: true);
    }
}
