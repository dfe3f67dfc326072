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
        // 22 convolutions; the stem stays float by default (the sensitivity search that may keep more float is off by
        // default). ONNX Runtime must turn the others into integer kernels.
        var floats = int8.FloatLayers!;
        output.WriteLine($"{int8.Scheme}; float: {string.Join(", ", floats.Select(l => $"{l.Output} ({l.ErrorShare:P0} of the error)"))}");
        Assert.Empty(floats);
        Assert.Equal(21, int8.QuantizedConvolutions);
        // Full 8-bit weights where the CPU adds 8-bit products in 32 bits (VNNI), 7-bit elsewhere.
        Assert.Equal(CpuFeatures.HasInt8DotProduct ? 127 : 63, int8.WeightLevels);
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
    public void Calibration_RunInBatches_SeesEveryImage_AsOneImageAtATimeDoes()
    {
        TorchRuntime.EnsureInitialized();
        var directory = OnnxResNetImporter.DefaultDirectory;
        var mean = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
        manual_seed(3);
        using var classifier = new ImageClassifier(OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName)), HeadSpec.Linear(5));
        classifier.eval();
        var preprocessor = new ImagePreprocessor(OnnxResNetImporter.Preprocessing, mean);
        var decoder = new ImageDecoder();
        var images = TestAssets.SampleEmoji(8).Select(f => preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(f))).ToList();
        // A ninth image, alone in the last (partial) batch, with activations far wider than the others': a calibration that
        // dropped or misread it would show in every range.
        images.Add([.. images[0].Select(v => v * 4)]);
        var model = Onnx.ModelProto.Parser.ParseFrom(OnnxExport.Export(classifier, 224));
        BatchNormFolding.Fold(model.Graph);
        var tensors = QdqPlan.Build(model.Graph, floatStem: true).Quantized;

        var batched = ActivationCalibrator.Calibrate(model, tensors, images, 224, CalibrationMethod.MinMax);
        var alone = images.Select(x => ActivationCalibrator.Calibrate(model, tensors, [x], 224, CalibrationMethod.MinMax)).ToList();

        Assert.Equal(tensors.Count, batched.Count);
        foreach (var tensor in tensors)
        {
            var (min, max) = (alone.Min(r => r[tensor].Min), alone.Max(r => r[tensor].Max));
            var tolerance = 1e-4 * Math.Max(1, max - min);
            Assert.True(Math.Abs(batched[tensor].Min - min) <= tolerance && Math.Abs(batched[tensor].Max - max) <= tolerance,
                $"{tensor}: batched [{batched[tensor].Min}, {batched[tensor].Max}], one at a time [{min}, {max}]");
        }
        Assert.True(tensors.Count(t => alone[^1][t].Max > alone.SkipLast(1).Max(r => r[t].Max)) > tensors.Count / 2, "the ninth image should widen most ranges");
    }

    [Fact]
    public async Task FeaturePass_CollectsTheCalibrationTheInt8StepWouldMake_ForTheTrainedModel_WithTheSameRangesAndGraph()
    {
        TorchRuntime.EnsureInitialized();
        var directory = OnnxResNetImporter.DefaultDirectory;
        var mean = OnnxResNetImporter.LoadMeanImage(Path.Combine(directory, OnnxResNetImporter.PreprocessFileName));
        manual_seed(5);
        using var classifier = new ImageClassifier(OnnxResNetImporter.LoadBackbone(Path.Combine(directory, OnnxResNetImporter.ModelFileName)), HeadSpec.Linear(2));
        classifier.eval();
        var preprocessor = new ImagePreprocessor(OnnxResNetImporter.Preprocessing, mean);
        var data = TestAssets.EmojiByCategory(Path.Combine(temp, "emoji-calibration"), 7, ("Flags", "flags"), ("Food & Drink", "food"));
        var dataset = await ImageFolderDataset.FromDirectoryAsync(data, new DatasetOptions { ValSplit = 0.2, Seed = 1 });
        // 9 of the training images: in the feature pass they come in dataset order, in batches of 4 mixed with other images;
        // the int8 step reads them in the sample's random order, 8 then 1.
        var options = new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 9 };
        var request = ServingGraphs.CalibrationRequest(options, dataset.Train, seed: 42)!.Value;
        var featureGraph = OnnxExport.Export(classifier, 224);
        var loader = new ServerlessClassifier.ModelCore.Inputs.ImageLoader(dataset, new ImageDecoder(), preprocessor.DecodeShorterSide, [], null);

        var cache = await new ServerlessClassifier.ModelCore.Features.FeatureExtraction(loader).ExtractFeaturesAsync(classifier, preprocessor, batchSize: 4, CancellationToken.None, calibration: request);

        var collected = cache.Calibration;
        Assert.NotNull(collected);
        Assert.Equal(9, collected.Images);
        // The calibration images' features came from the calibration graph (BatchNorm folded): the same features to float rounding.
        using (var engine = new OnnxEngine(featureGraph, new OnnxEngineOptions()))
        {
            var decoder = new ImageDecoder();
            var worst = 0.0;
            foreach (var image in request.Sample)
            {
                var row = cache.TrainImages.ToList().IndexOf(image);
                var expected = engine.ExtractFeatures(preprocessor.DecodeAndPreprocess(decoder, await image.ReadAsync(CancellationToken.None)), 1);
                var actual = cache.Train.AsSpan(row * cache.NumFeatures, cache.NumFeatures).ToArray();
                worst = Math.Max(worst, Enumerable.Range(0, expected.Length).Max(j => Math.Abs(expected[j] - actual[j])) / expected.Max(Math.Abs));
            }
            output.WriteLine($"calibration images' features against the serving graph's: max |difference| {worst:E1} of the largest feature");
            Assert.True(worst < 1e-4, $"{worst}");
        }

        // The trained model: another head on the same backbone. Its calibration graph is the same; the int8 step's own
        // calibration of it, on the same sample read its own way, gives the same ranges and the same int8 graph.
        manual_seed(6);
        classifier.ResetHead(HeadSpec.Linear(2));
        classifier.eval();
        var fp32 = OnnxExport.Export(classifier, 224);
        Assert.False(fp32.AsSpan().SequenceEqual(featureGraph));
        var graph = CalibrationGraph.Build(fp32, options.Quantizer.FloatStem);
        Assert.True(collected.StandsFor(graph, request.Sample, options.Quantizer));
        var reader = new ImageDecoder();
        var inputs = new List<float[]>();
        foreach (var image in request.Sample)
        {
            inputs.Add(preprocessor.DecodeAndPreprocess(reader, await image.ReadAsync(CancellationToken.None)));
        }
        foreach (var method in Enum.GetValues<CalibrationMethod>())
        {
            var separate = ActivationCalibrator.Calibrate(graph, inputs, 224, method);
            var fromFeatures = collected.Statistics.Ranges(method);
            Assert.Equal(separate.Count, fromFeatures.Count);
            foreach (var (tensor, range) in separate)
            {
                // Bit for bit: the same graph ran on the same inputs.
                Assert.True(range == fromFeatures[tensor], $"{method} {tensor}: int8 step [{range.Min:R}, {range.Max:R}], feature pass [{fromFeatures[tensor].Min:R}, {fromFeatures[tensor].Max:R}]");
            }
        }
        var own = Int8Quantizer.Quantize(fp32, inputs, 224, options.Quantizer);
        var reused = Int8Quantizer.Quantize(graph, collected.Statistics.Ranges(options.Quantizer.Calibration), collected.Images, [], 224, options.Quantizer);
        Assert.True(own.Onnx.AsSpan().SequenceEqual(reused.Onnx), "the int8 graphs differ");

        // A sample the feature pass did not collect (another seed) is calibrated by the int8 step itself.
        Assert.False(collected.StandsFor(graph, ServingGraphs.CalibrationSample(dataset.Train, 9, seed: 43), options.Quantizer));
    }

    [Fact]
    public async Task Check_ServesInt8WhenItAgrees_AndRefusesABrokenGraphWithTheFigures()
    {
        var (fp32, labels, dataset, preprocessor) = await EmojiModelAsync();

        var kept = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, dataset.Validation, preprocessor, new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 16, PortableCheckImages = 4 }, seed: 42);
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
        // The bits left to the training CPU (auto): with VNNI the served graph has 8-bit weights, and a 7-bit graph made with the
        // same ranges is judged against the same fp32 answers, for CPUs without VNNI (its own verdict).
        if (CpuFeatures.HasInt8DotProduct)
        {
            Assert.Equal(8, check.WeightBits);
            var portable = Assert.IsType<PortableGraph>(kept.Portable);
            var portableCheck = portable.Quantization!;
            output.WriteLine($"7-bit: int8 {portableCheck.Int8Accuracy:P1}, agreement {portableCheck.Top1Agreement:P1}, max |dp| {portableCheck.MaxProbabilityDifference:F3}");
            Assert.Equal(7, portableCheck.WeightBits);
            Assert.Contains("(7-bit range)", portableCheck.Scheme, StringComparison.Ordinal);
            // Judged on a stratified sample of the same check images (PortableCheckImages), its own figures and sample recorded.
            Assert.Equal((4, 4, check.CalibrationImages, check.SampledFrom), (portableCheck.ValidationImages, portableCheck.SampleLimit, portableCheck.CalibrationImages, portableCheck.SampledFrom));
            Assert.True(portableCheck.Accepted, "the 7-bit graph of flags and food should pass its check too");
            Assert.Equal(ModelPrecision.Int8, portable.Precision);
            Assert.False(portable.Onnx.AsSpan().SequenceEqual(kept.Onnx), "the 7-bit graph is the 8-bit one");
            Assert.Contains(kept.Timings, t => t.Step == $"check the 7-bit graph on {portableCheck.ValidationImages} images");
        }
        else
        {
            Assert.Null(kept.Portable);
        }
        Assert.Null(broken.Portable); // the plan set the quantiser's levels: one graph

        var refused = broken.Quantization!;
        output.WriteLine($"broken: {broken.Refusal}");
        Assert.Equal(ModelPrecision.Fp32, broken.Precision);
        Assert.Same(fp32, broken.Onnx);
        Assert.False(refused.Accepted);
        Assert.True(refused.AccuracyDropPoints > 0.5);
        Assert.Contains(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"{refused.AccuracyDropPoints:F1} points below fp32's {refused.Fp32Accuracy:P1}"), broken.Refusal, StringComparison.Ordinal);
        Assert.Contains($"on the {dataset.Validation.Count} given images", broken.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Check_JudgesTheGivenFp32Answers_ThroughTheGivenHeads_OnABoundedStratifiedSample()
    {
        var (fp32, labels, dataset, preprocessor) = await EmojiModelAsync();
        LabeledImage[] images = [.. dataset.Train, .. dataset.Validation];
        int[] truth = [.. images.Select(im => labels.ToList().IndexOf(im.Label))];
        // fp32 answers that are all "class 0" (the fp32 graph would know better: these must be the ones judged), and fold
        // heads that read the int8 graph's features: a head that answers each image's label through its bias is right
        // whatever the features, one that always answers class 0 is right on class 0 only.
        var allZero = truth.SelectMany(_ => Answer(0)).ToArray();
        int width;
        using (var engine = new OnnxEngine(fp32, OnnxEngineOptions.Default))
        {
            width = engine.NumFeatures;
        }
        LinearWeights Head(int answer) => new(new float[2 * width], answer == 0 ? [10f, 0f] : [0f, 10f]);
        var options = new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 8, CheckImages = 10 };
        HeldOutReference Reference(double[] logits, IReadOnlyList<LinearWeights>? heads, int[]? headOf) =>
            new() { Images = images, Labels = truth, Logits = logits, Heads = heads, HeadOf = headOf, Evidence = "out-of-fold" };

        var judgedAgainstGiven = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, Reference(allZero, [Head(0), Head(1)], truth), preprocessor, options, seed: 42);
        var throughConstantHead = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train,
            Reference([.. truth.SelectMany(Answer)], [Head(0)], [.. truth.Select(_ => 0)]), preprocessor, options, seed: 42);

        var given = judgedAgainstGiven.Quantization!;
        output.WriteLine($"given answers: fp32 {given.Fp32Accuracy:P0}, int8 {given.Int8Accuracy:P0}; constant head: {throughConstantHead.Refusal}");
        // 10 of 30 images, stratified: 5 of each class.
        Assert.Equal((10, 30, 10), (given.ValidationImages, given.SampledFrom!.Value, given.SampleLimit!.Value));
        Assert.Equal(0.5, given.Fp32Accuracy, 9);  // the given answers (class 0 everywhere), not the fp32 graph's
        Assert.Equal(1.0, given.Int8Accuracy, 9);  // each image through its head: the one that answers its label
        Assert.Equal("out-of-fold", given.Evidence);
        var constant = throughConstantHead.Quantization!;
        Assert.Equal((1.0, 0.5), (constant.Fp32Accuracy, constant.Int8Accuracy));
        Assert.False(constant.Accepted);
        Assert.Equal(ModelPrecision.Fp32, throughConstantHead.Precision);
        // 5 of 10 images lost, none gained: drop 50 points, its 95 % interval 50 +- 1.96 sqrt(5 - 25 / 10) / 10.
        Assert.Equal(50 - (1.959964 * Math.Sqrt(2.5) / 10 * 100), constant.AccuracyDropLowPoints!.Value, 3);
        Assert.Contains("95 % interval", throughConstantHead.Refusal, StringComparison.Ordinal);
        Assert.Contains("on the 10 out-of-fold images", throughConstantHead.Refusal, StringComparison.Ordinal);
    }

    [Fact]
    public async Task MultiLabelCheck_JudgesEachLabelsDecisionAtItsThreshold_AndKeepsInt8OnlyWhenNoLabelDropsBeyondTheLimit()
    {
        var (fp32, _, dataset, preprocessor) = await EmojiModelAsync();
        LabeledImage[] images = [.. dataset.Train, .. dataset.Validation];
        int width;
        using (var engine = new OnnxEngine(fp32, OnnxEngineOptions.Default))
        {
            width = engine.NumFeatures;
        }
        // Two labels: "a" on every other image, "b" on every third. The fp32 answers given are the truth (probability 0.9 or 0.1
        // against thresholds 0.5 and 0.3); fold heads on the int8 features decide through their bias alone: on (sigmoid 10) or off.
        string[] labels = ["a", "b"];
        bool[] truth = [.. images.SelectMany((_, i) => new[] { i % 2 == 0, i % 3 == 0 })];
        double[] probabilities = [.. truth.Select(t => t ? 0.9 : 0.1)];
        LinearWeights Off() => new(new float[width], [-10f]);
        LinearWeights On() => new(new float[width], [10f]);
        int[] Truthful(int label) => [.. images.Select((_, i) => truth[(i * 2) + label] ? 1 : 0)];
        var options = new PrecisionOptions { Precision = PrecisionChoice.Int8, CalibrationImages = 8 };
        HeldOutReference Reference(int[] headOfB) => new()
        {
            Images = images,
            Labels = [.. images.Select((_, i) => (i % 2 == 0 ? 1 : 0) + (i % 3 == 0 ? 2 : 0))],
            Logits = new double[images.Length * 2],
            Evidence = "out-of-fold",
            MultiLabel = new MultiLabelReference
            {
                Probabilities = probabilities,
                Truth = truth,
                Thresholds = [0.5, 0.3],
                Temperatures = [1, 1],
                Heads = [[Off(), On()], [Off(), On()]],
                HeadOf = [Truthful(0), headOfB],
            },
        };

        var agreeing = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, Reference(Truthful(1)), preprocessor, options, seed: 42);
        var bAlwaysOff = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, Reference([.. images.Select(_ => 0)]), preprocessor, options, seed: 42);

        var kept = agreeing.Quantization!;
        output.WriteLine($"agreeing: {kept.Accepted}; b always off: {bAlwaysOff.Refusal}");
        Assert.Equal(ModelPrecision.Int8, agreeing.Precision);
        Assert.Equal(images.Length, kept.ValidationImages);
        Assert.Equal(["a", "b"], kept.PerLabel!.Select(l => l.Label));
        Assert.All(kept.PerLabel!, l => Assert.Equal((1.0, 1.0, 1.0), (l.Fp32Accuracy, l.Int8Accuracy, l.Agreement)));
        Assert.Equal([0.5, 0.3], kept.PerLabel!.Select(l => l.Threshold));
        var refused = bAlwaysOff.Quantization!;
        Assert.False(refused.Accepted);
        Assert.Equal(ModelPrecision.Fp32, bAlwaysOff.Precision);
        var b = refused.PerLabel![1];
        var bRight = (images.Length - truth.Where((_, k) => k % 2 == 1).Count(t => t)) / (double)images.Length; // right on every image without b
        Assert.Equal((1.0, bRight, bRight), (b.Fp32Accuracy, b.Int8Accuracy, b.Agreement));
        Assert.Equal(1.0, refused.PerLabel[0].Agreement);
        Assert.Contains("decisions for label \"b\" (at its threshold 0.3)", bAlwaysOff.Refusal, StringComparison.Ordinal);
    }

    /// <summary>Two-class logits that answer <paramref name="label"/> confidently.</summary>
    private static double[] Answer(int label) => label == 0 ? [10.0, 0.0] : [0.0, 10.0];

    [Fact]
    public void StratifiedSample_KeepsEachClassesShare_AndEveryRowWhenTheyFit()
    {
        int[] labels = [.. Enumerable.Repeat(0, 700), .. Enumerable.Repeat(1, 200), .. Enumerable.Repeat(2, 100)];
        var sample = ServingGraphs.StratifiedSample(labels, 100, seed: 1);
        Assert.Equal(100, sample.Distinct().Count());
        Assert.Equal([70, 20, 10], [.. Enumerable.Range(0, 3).Select(c => sample.Count(i => labels[i] == c))]);
        Assert.NotEqual(sample, ServingGraphs.StratifiedSample(labels, 100, seed: 2));
        Assert.Equal(Enumerable.Range(0, 1000), ServingGraphs.StratifiedSample(labels, 1000, seed: 1));
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
