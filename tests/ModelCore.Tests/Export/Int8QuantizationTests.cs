using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Engine;

namespace ServerlessClassifier.ModelCore.Tests.Export;

/// <summary>
/// The int8 graph of the default ImageNet backbone: what ONNX Runtime makes of it, its size, and its parity with
/// the fp32 graph on real images; and the check that decides whether an int8 graph is served.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class Int8QuantizationTests(ITestOutputHelper output) : IDisposable
{
    private readonly string temp = Directory.CreateTempSubdirectory("int8-tests-").FullName;

    [Fact]
    public void DefaultBackbone_Int8Graph_RunsOnIntegerKernels_IsUnderAThirdOfTheSize_AndAgreesWithFp32OnRealImages()
    {
        TorchRuntime.EnsureInitialized();
        var directory = OnnxResNetImporter.DefaultDirectory;
        var mean = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
        manual_seed(3);
        using var model = new ImageClassifier(OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName)), HeadSpec.Linear(5) with { PooledStages = 2 });
        model.eval();
        var preprocessor = new ImagePreprocessor(OnnxResNetImporter.Preprocessing, mean);
        var decoder = new ImageDecoder();
        var images = TestAssets.SampleEmoji(48).Select(f => preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(f))).ToList();
        var calibration = images.Where((_, i) => i % 3 == 0).ToList();
        var test = images.Where((_, i) => i % 3 != 0).ToList();
        var fp32 = OnnxExport.Export(model, 224);

        var int8 = Int8Quantizer.Quantize(fp32, calibration, 224);

        Assert.True(int8.Onnx.Length * 3 <= fp32.Length, $"int8 graph {int8.Onnx.Length} bytes, fp32 {fp32.Length}");
        // 22 convolutions; the stem stays float by default. ONNX Runtime must turn the other 21 into integer kernels.
        Assert.Equal(21, int8.QuantizedConvolutions);
        var optimized = OptimizedOpCounts(int8.Onnx);
        output.WriteLine(string.Join(", ", optimized.Select(p => $"{p.Key} x{p.Value}")));
        Assert.Equal(21, optimized.GetValueOrDefault("QLinearConv"));
        Assert.Equal(9, optimized.GetValueOrDefault("QLinearAdd")); // every residual addition (9 blocks)
        Assert.False(optimized.ContainsKey("BatchNormalization"));

        using var fp32Engine = new OnnxEngine(fp32, OnnxEngineOptions.Default);
        using var int8Engine = new OnnxEngine(int8.Onnx, OnnxEngineOptions.Default);
        var cosines = test.Select(x => Cosine(fp32Engine.ExtractFeatures(x, 1), int8Engine.ExtractFeatures(x, 1))).ToList();
        output.WriteLine($"feature cosine fp32 vs int8 on {test.Count} emoji: mean {cosines.Average():F4}, min {cosines.Min():F4}");
        Assert.True(cosines.Average() >= 0.99, $"mean cosine {cosines.Average():F4}");
        Assert.True(cosines.Min() >= 0.98, $"min cosine {cosines.Min():F4}");

        // The activation map rides along in float over the dequantised stage outputs: exact for the int8 graph's own
        // probabilities (each class's grid averages to log p minus the mean log p).
        Assert.True(int8Engine.HasActivationMap);
        foreach (var x in test.Take(3))
        {
            var (probabilities, _, map, side) = int8Engine.Explain(x);
            Assert.Equal(14, side);
            var meanLog = probabilities.Average(p => Math.Log(p));
            for (var c = 0; c < probabilities.Length; c++)
            {
                Assert.Equal(Math.Log(probabilities[c]) - meanLog, map.Skip(c * side * side).Take(side * side).Average(), 3);
            }
        }
    }

    [Fact]
    public async Task Check_ServesInt8WhenItAgrees_AndRefusesABrokenGraphWithTheFigures()
    {
        var (fp32, labels, dataset, preprocessor) = await EmojiModelAsync();

        var kept = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, dataset.Validation, preprocessor, new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 16 }, seed: 42);
        // One-level weights (-1, 0, +1 times a scale per channel): a real int8 graph, and a badly broken one.
        var broken = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, dataset.Validation, preprocessor,
            new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 16, Quantizer = Int8QuantizerOptions.Default with { WeightLevels = 1 } }, seed: 42);

        var check = kept.Quantization!;
        output.WriteLine($"kept: fp32 {check.Fp32Accuracy:P1}, int8 {check.Int8Accuracy:P1}, agreement {check.Top1Agreement:P1}, max |dp| {check.MaxProbabilityDifference:F3}");
        Assert.Equal(ModelPrecision.Int8, kept.Precision);
        Assert.True(check.Accepted);
        Assert.Null(kept.Refusal);
        Assert.Equal(dataset.Validation.Count, check.ValidationImages);
        Assert.Equal(Math.Min(16, dataset.Train.Count), check.CalibrationImages);
        Assert.True(check.Fp32Accuracy >= 0.9, $"fp32 accuracy {check.Fp32Accuracy:P1}: the test model should know flags from food");
        Assert.True(check.AccuracyDropPoints <= 0.5);
        Assert.True(check.Int8Bytes * 3 <= check.Fp32Bytes);

        var refused = broken.Quantization!;
        output.WriteLine($"broken: {broken.Refusal}");
        Assert.Equal(ModelPrecision.Fp32, broken.Precision);
        Assert.Same(fp32, broken.Onnx);
        Assert.False(refused.Accepted);
        Assert.True(refused.AccuracyDropPoints > 0.5);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{refused.AccuracyDropPoints:F1} points below fp32's {refused.Fp32Accuracy:P1}"), broken.Refusal, StringComparison.Ordinal);
        Assert.Contains($"on the {dataset.Validation.Count} validation images", broken.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Fp32Choice_MakesNoInt8Graph()
    {
        var model = Path.Combine(temp, "model");
        var manifest = TestModels.SaveColourModel(model);
        var data = Path.Combine(temp, "data");
        for (var c = 0; c < TestModels.ColourLabels.Length; c++)
        {
            Directory.CreateDirectory(Path.Combine(data, TestModels.ColourLabels[c]));
            for (var i = 0; i < 4; i++)
            {
                await File.WriteAllBytesAsync(Path.Combine(data, TestModels.ColourLabels[c], $"{i}.png"), TestModels.ColourPng(c, 500 + (10 * c) + i));
            }
        }
        var fp32 = await File.ReadAllBytesAsync(Path.Combine(model, ModelCheckpoint.OnnxFileName));
        var dataset = await ImageFolderDataset.FromDirectoryAsync(data);

        var graph = await ServingGraphs.CreateAsync(fp32, TestModels.ColourLabels, dataset.Train, dataset.Validation, new ImagePreprocessor(manifest.Preprocessing),
            new PrecisionOptions { Precision = PrecisionChoice.Fp32 }, seed: 42);

        Assert.Equal(ModelPrecision.Fp32, graph.Precision);
        Assert.Null(graph.Quantization);
        Assert.Same(fp32, graph.Onnx);
    }

    public void Dispose() => Directory.Delete(temp, recursive: true);

    /// <summary>
    /// A head-mode model (the default ImageNet backbone, the product's linear probe) trained on real emoji of two
    /// categories, flags and food, 15 each, half of them held for validation (what the check classifies).
    /// </summary>
    private async Task<(byte[] Fp32, IReadOnlyList<string> Labels, ImageFolderDataset Dataset, ImagePreprocessor Preprocessor)> EmojiModelAsync()
    {
        TorchRuntime.EnsureInitialized();
        var data = TestAssets.EmojiByCategory(Path.Combine(temp, "emoji"), 15, ("Flags", "flags"), ("Food & Drink", "food"));
        var plan = new HeadPlan { ValSplit = 0.5, Precision = new PrecisionOptions { Precision = PrecisionChoice.Fp32 } };
        var dataset = await ImageFolderDataset.FromDirectoryAsync(data, TrainingEngine.DatasetOptionsFor(plan));
        using var result = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(temp, "model"), new TrainingRun { Device = "cpu" });
        var package = await ModelPackage.LoadAsync(result.Folder);
        return (package.GetFile(ModelFileRoles.Onnx).ToArray(), result.Manifest.Labels, dataset, new ImagePreprocessor(result.Manifest.Preprocessing, package.ReadMeanImage()));
    }

    private Dictionary<string, int> OptimizedOpCounts(byte[] onnx)
    {
        var path = Path.Combine(temp, "optimized.onnx");
        using (var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, OptimizedModelFilePath = path })
        using (new InferenceSession(onnx, options))
        {
        }
        return Onnx.ModelProto.Parser.ParseFrom(File.ReadAllBytes(path)).Graph.Node.GroupBy(n => n.OpType).ToDictionary(g => g.Key, g => g.Count());
    }

    private static double Cosine(float[] a, float[] b)
    {
        double dot = 0, aa = 0, bb = 0;
        for (var i = 0; i < a.Length; i++)
        {
            dot += a[i] * b[i];
            aa += a[i] * a[i];
            bb += b[i] * b[i];
        }
        return dot / Math.Sqrt(aa * bb);
    }
}
