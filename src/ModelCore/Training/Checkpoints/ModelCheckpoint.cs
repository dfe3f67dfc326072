using System.Security.Cryptography;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using TorchSharp.PyBridge;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>A file to store beside the weights (e.g. the mean image or model.onnx).</summary>
public sealed record ModelFileContent(string Role, string Name, ReadOnlyMemory<byte> Content);

/// <summary>
/// Writes and reads the checkpoint format: <c>manifest.json</c> plus <c>model.safetensors</c> (readable
/// by PyTorch users with the safetensors package) and any extra files. The manifest is written last,
/// so a folder with a manifest is complete.
/// </summary>
public static class ModelCheckpoint
{
    public const string WeightsFileName = "model.safetensors";
    public const string OnnxFileName = "model.onnx";

    /// <summary>The 7-bit int8 graph served on CPUs without 8-bit dot products when <c>model.onnx</c> has 8-bit weights.</summary>
    public const string PortableInt8FileName = "model.int8-7bit.onnx";

    /// <summary>The fp32 graph served on CPUs without 8-bit dot products when <c>model.onnx</c> has 8-bit weights and no 7-bit graph passed.</summary>
    public const string PortableFp32FileName = "model.fp32.onnx";

    /// <summary>Saves weights and extra files, then the manifest with their sizes and hashes; returns that manifest.</summary>
    public static ModelManifest Save(ImageClassifier model, ModelManifest manifest, string folder, IEnumerable<ModelFileContent>? extraFiles = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(manifest);
        Directory.CreateDirectory(folder);
        using var weights = new MemoryStream();
        model.save_safetensors(weights, leaveOpen: true);
        var files = new List<ModelFileContent> { new(ModelFileRoles.Weights, WeightsFileName, weights.ToArray()) };
        files.AddRange(extraFiles ?? []);

        var entries = new List<ModelFileEntry>();
        foreach (var file in files)
        {
            if (!ModelManifest.IsPlainFileName(file.Name))
            {
                throw new ArgumentException($"{file.Name} is not a plain file name.", nameof(extraFiles));
            }
            AtomicFile.WriteAllBytes(Path.Combine(folder, file.Name), file.Content);
            entries.Add(new ModelFileEntry(file.Role, file.Name, file.Content.Length, Convert.ToHexStringLower(SHA256.HashData(file.Content.Span))));
        }
        var final = manifest with { Files = entries };
        final.Validate(folder);
        AtomicFile.WriteAllText(Path.Combine(folder, ModelManifest.FileName), final.ToJson());
        return final;
    }

    /// <summary>
    /// Saves a model ready to publish and serve: weights, the mean image if the preprocessing uses one,
    /// and <c>model.onnx</c> exported from the model and verified against it on
    /// <paramref name="verificationInputs"/> (preprocessed real images; a mismatch throws and nothing is
    /// written), and the out-of-distribution statistics the manifest's <c>outOfDistribution</c> section names.
    /// Returns the manifest as written.
    /// </summary>
    public static ModelManifest SaveForServing(ImageClassifier model, ModelManifest manifest, string folder, IReadOnlyList<float[]> verificationInputs, float[]? meanImage,
        Ood.FeatureStatistics? outOfDistribution = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        var export = Export.OnnxExport.ExportVerified(model, manifest.Preprocessing.InputSize, verificationInputs);
        var verified = manifest with { Verification = new ExportVerification(export.MaxAbsDifference, export.Samples, Export.OnnxExport.DefaultTolerance) };
        return SaveForServing(model, verified, folder, new ServingGraph(export.Onnx, ModelPrecision.Fp32, null), meanImage, outOfDistribution);
    }

    /// <summary>
    /// Saves a model with the graph it serves: the verified fp32 export, or the int8 graph
    /// <see cref="ServingGraphs.CreateAsync"/> made from it and checked; the manifest records the precision and the
    /// int8 check's figures.
    /// </summary>
    public static ModelManifest SaveForServing(ImageClassifier model, ModelManifest manifest, string folder, ServingGraph graph, float[]? meanImage,
        Ood.FeatureStatistics? outOfDistribution = null)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentNullException.ThrowIfNull(graph);
        var portableName = graph.Portable?.Precision == ModelPrecision.Int8 ? PortableInt8FileName : PortableFp32FileName;
        manifest = manifest with
        {
            Precision = graph.Precision,
            Quantization = graph.Quantization,
            PortableGraph = graph.Portable is { } p ? new PortableGraphSpec(portableName, p.Precision, p.Quantization) : null,
        };
        var extra = new List<ModelFileContent> { new(ModelFileRoles.Onnx, OnnxFileName, graph.Onnx) };
        if (graph.Portable is { } portable)
        {
            extra.Add(new ModelFileContent(ModelFileRoles.PortableOnnx, portableName, portable.Onnx));
        }
        if (manifest.Preprocessing.MeanImageFile is { } meanName)
        {
            extra.Add(new ModelFileContent(ModelFileRoles.MeanImage, meanName,
                MeanImage.ToBytes(meanImage ?? throw new ArgumentNullException(nameof(meanImage), "the preprocessing names a mean image"))));
        }
        if (manifest.OutOfDistribution is { } ood)
        {
            extra.Add(new ModelFileContent(ModelFileRoles.OutOfDistribution, ood.File,
                (outOfDistribution ?? throw new ArgumentNullException(nameof(outOfDistribution), "the manifest names out-of-distribution statistics")).ToBytes()));
        }
        return Save(model, manifest, folder, extra);
    }

    /// <summary>Builds the TorchSharp classifier a verified package describes and loads its weights (CPU, eval mode).</summary>
    public static ImageClassifier CreateTorchModel(ModelPackage package)
    {
        ArgumentNullException.ThrowIfNull(package);
        var manifest = package.Manifest;
        var model = new ImageClassifier(BackboneCatalog.Create(manifest.Backbone), manifest.Head);
        using var weights = new MemoryStream(package.GetFile(ModelFileRoles.Weights).ToArray(), writable: false);
        try
        {
            model.load_safetensors(weights, strict: true, leaveOpen: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException)
        {
            model.Dispose();
            throw new ModelFormatException($"{package.Source}: the weights do not fit a {manifest.Backbone} with a {manifest.Head.Kind} head of {manifest.Head.NumClasses} classes ({e.Message}).", e);
        }
        model.eval();
        return model;
    }
}
