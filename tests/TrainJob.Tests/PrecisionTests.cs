using System.Text.Json;
using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// <c>train --precision</c> on the real engine (the default ImageNet backbone) and real emoji of two categories: an
/// int8 model is checked against fp32 before it is written as the served graph, published and used; a model whose
/// check fails is not published; <c>publish</c> refuses an int8 manifest without a passing check.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class PrecisionTests : IDisposable
{
    /// <summary>
    /// A plan file whose int8 quantiser keeps one level of weights (-1, 0, +1 times a scale): a real int8 graph that is
    /// badly wrong, to reach the refusal through the real command (<c>--plan</c> carries every setting of the plan).
    /// </summary>
    private const string BrokenQuantizerPlan = """{ "mode": "head", "precision": { "quantizer": { "weightLevels": 1 } } }""";

    /// <summary>The head fitted on the int8 backbone's features (a plan setting, off by default).</summary>
    private const string Int8FeaturesPlan = """{ "mode": "head", "precision": { "int8Features": true } }""";

    /// <summary><see cref="BrokenQuantizerPlan"/> with the head fitted on the (broken) int8 backbone's features.</summary>
    private const string BrokenQuantizerInt8FeaturesPlan = """{ "mode": "head", "precision": { "int8Features": true, "quantizer": { "weightLevels": 1 } } }""";

    private readonly TempFolder temp = new();

    [Fact]
    public async Task Train_Int8_WithInt8Features_FitsOnTheInt8Backbone_PublishesTheCheckedInt8Graph_WhichServes()
    {
        var data = Emoji("emoji");
        var output = temp.Combine("int8");
        var cli = new Cli();

        var train = await cli.RunAsync("train", "--data", data, "--output", output, "--plan", Plan(Int8FeaturesPlan), "--precision", "int8", "--device", "cpu", "--publish");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        Assert.Contains("Published version ", train.Out, StringComparison.Ordinal);
        var package = await ModelPackage.LoadAsync(output);
        var manifest = package.Manifest;
        Assert.Equal(ModelPrecision.Int8, manifest.Precision);
        var check = manifest.Quantization!;
        Assert.True(check.Accepted);
        Assert.True(check.AccuracyDropPoints <= check.MaxAccuracyDropPoints);
        // With int8 features the head is fitted on the int8 backbone's features: the calibration images (every training image here)
        // go first through the calibration graph, the backbone is quantised with their ranges, and every image's features are
        // the int8 backbone's. The check compares each calibration image's fold head (which never trained on it) on its int8
        // and its fp32 features; the served graph is quantised with the same ranges and gives the same features.
        Assert.Equal("int8", manifest.Training!.Probe!.FeaturePrecision);
        Assert.Equal("out-of-fold calibration", check.Evidence);
        Assert.InRange(check.CalibrationImages, 12, 23); // the training split of 24 images
        Assert.Equal((check.CalibrationImages, 24), (check.ValidationImages, check.SampledFrom!.Value));
        Assert.True(check.AccuracyDropLowPoints <= check.AccuracyDropPoints && check.AccuracyDropPoints <= check.AccuracyDropHighPoints, $"{check}");
        Assert.True(check.DisagreementLow <= 1 - check.Top1Agreement && 1 - check.Top1Agreement <= check.DisagreementHigh, $"{check}");
        Assert.Contains($"Precision: int8, the head fitted on the int8 backbone's features (int8 check on {check.ValidationImages} out-of-fold calibration images (the calibration sample, of 24): ",
            train.Out, StringComparison.Ordinal);
        Assert.Matches($@"int8 features: {check.CalibrationImages} calibration images went first through the calibration graph \([\d.]+ s; their fp32 features kept for the int8 check\), " +
            @"the backbone was quantised with their ranges \([\d.]+ s; QDQ: per-channel symmetric int8 weights", train.Out);
        Assert.Matches($@"int8 check of the head fitted on int8 features: on {check.ValidationImages} out-of-fold calibration images, the fold heads are right on [\d.]+ % with int8 features vs [\d.]+ % with fp32 features, .*: met\.", train.Out);
        Assert.Matches(@"int8 step: quantise with the ranges of \d+ calibration images from the feature pass [\d.]+ s, served graph's features equal to the fitted ones on 4 images [\d.]+ s\.", train.Out);
        Assert.DoesNotContain("int8 calibration: ", train.Out, StringComparison.Ordinal);
        Assert.Equal(check.Int8Bytes, package.GetFile(ModelFileRoles.Onnx).Length);
        Assert.True(check.Int8Bytes * 3 <= check.Fp32Bytes, $"{check.Int8Bytes} vs {check.Fp32Bytes}");

        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson)));
        Assert.Equal("int8", json.RootElement.GetProperty("precision").GetString());
        Assert.Equal(check.Top1Agreement, json.RootElement.GetProperty("quantization").GetProperty("top1Agreement").GetDouble());
        var html = await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml));
        Assert.Contains("<h2>Precision</h2>", html, StringComparison.Ordinal);
        Assert.Contains("the int8 graph passed its check", html, StringComparison.Ordinal);

        var list = await cli.RunAsync("models", "list");
        Assert.Contains("int8", list.Out, StringComparison.Ordinal);
        var flag = Directory.GetFiles(Path.Combine(data, "flags")).Order(StringComparer.Ordinal).First();
        var classify = await cli.RunAsync("classify", "--model", "current", "--json", flag);
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        Assert.Equal("flags", JsonDocument.Parse(classify.Out).RootElement.GetProperty("top")[0].GetProperty("label").GetString());
        Assert.DoesNotContain("Serving ", classify.Err, StringComparison.Ordinal); // model.onnx, as trained

        if (!CpuFeatures.HasInt8DotProduct)
        {
            Assert.Equal(7, check.WeightBits); // auto on a CPU without VNNI: one 7-bit graph, right on any x86 CPU
            Assert.Null(manifest.PortableGraph);
            return;
        }
        // The bits left to this VNNI CPU (auto): 8-bit weights, and for CPUs without VNNI (where their integer sums can
        // saturate) the package carries a graph of its own. The head was fitted on the 8-bit graph's features, so that is the
        // fp32 graph (whose features through the fold heads the check measured), not a 7-bit backbone the head never saw.
        Assert.Equal(8, check.WeightBits);
        Assert.Equal(new PortableGraphSpec(ModelCheckpoint.PortableFp32FileName, ModelPrecision.Fp32, null), manifest.PortableGraph);
        Assert.Equal(check.Fp32Bytes, package.GetFile(ModelFileRoles.PortableOnnx).Length);
        Assert.Contains($"CPUs without it serve the fp32 graph {ModelCheckpoint.PortableFp32FileName} (the head was fitted on the 8-bit graph's features).", train.Out, StringComparison.Ordinal);
        Assert.Equal((ModelCheckpoint.PortableFp32FileName, "fp32"),
            (json.RootElement.GetProperty("portableGraph").GetProperty("file").GetString(), json.RootElement.GetProperty("portableGraph").GetProperty("precision").GetString()));
        // report.html says the same as the train output: which graph CPUs without VNNI serve.
        Assert.Contains($"<p>Weights: 8-bit weights, served on CPUs with VNNI; CPUs without it serve the fp32 graph {ModelCheckpoint.PortableFp32FileName} (the head was fitted on the 8-bit graph&#39;s features).</p>", html, StringComparison.Ordinal);
        // A CPU without VNNI (reached by the test-only override of the detection) serves that graph from the registry, and says so.
        CliRun portable;
        Environment.SetEnvironmentVariable(CpuFeatures.AssumeNoInt8DotProductVariable, "1");
        try
        {
            portable = await cli.RunAsync("classify", "--model", "current", "--json", flag);
        }
        finally
        {
            Environment.SetEnvironmentVariable(CpuFeatures.AssumeNoInt8DotProductVariable, null);
        }
        Assert.True(portable.ExitCode == ExitCodes.Ok, portable.All);
        Assert.Contains($"Serving {ModelCheckpoint.PortableFp32FileName}, fp32: this CPU has no 8-bit dot products (VNNI)", portable.Err, StringComparison.Ordinal);
        Assert.Equal("flags", JsonDocument.Parse(portable.Out).RootElement.GetProperty("top")[0].GetProperty("label").GetString());
    }

    [Fact]
    public async Task Train_Int8_ByDefault_FitsOnFp32Features_ChecksEveryImageOutOfFold_WithTheWeightBitsAskedForTheServingCpu()
    {
        var output = temp.Combine("int8-fp32-features");
        var cli = new Cli();

        // 7-bit weights, as a model to be served on CPUs without VNNI needs, whatever the CPU that trains it has (auto: 8 with VNNI).
        var train = await cli.RunAsync("train", "--data", Emoji("emoji"), "--output", output, "--precision", "int8", "--int8-weight-bits", "7", "--device", "cpu");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Equal(ModelPrecision.Int8, manifest.Precision);
        Assert.Equal("fp32", manifest.Training!.Probe!.FeaturePrecision);
        var check = manifest.Quantization!;
        Assert.True(check.Accepted);
        // Head mode's validation metrics are out-of-fold over every image: the check classifies all 24, out-of-fold (each
        // through the fold head that never trained on it), against the fp32 answers the metrics come from.
        Assert.Equal(24, check.ValidationImages);
        Assert.Equal("out-of-fold", check.Evidence);
        Assert.Equal(manifest.Metrics!.Accuracy!.Value, check.Fp32Accuracy, 9);
        Assert.Contains("Precision: int8, the head fitted on fp32 features (int8 check on 24 out-of-fold images: ", train.Out, StringComparison.Ordinal);
        Assert.Contains("int8 weight bits 7;", train.Out, StringComparison.Ordinal);
        Assert.Equal(7, check.WeightBits);
        Assert.Contains("QDQ: per-channel symmetric int8 weights (7-bit range)", check.Scheme, StringComparison.Ordinal);
        Assert.Contains("; 7-bit weights: the same answers on any x86 CPU, with VNNI or AVX2 alone.", train.Out, StringComparison.Ordinal);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson)));
        Assert.Equal("7", report.RootElement.GetProperty("settings").GetProperty("int8 weight bits").GetString());
        // The calibration images' statistics were collected in the feature pass (at most the plan's, from the training images),
        // so the int8 step only quantises and checks; and where its time went.
        Assert.Matches(@"int8 calibration: \d+ of the training images went through the calibration graph instead of the serving graph", train.Out);
        Assert.Matches(@"int8 step: quantise with the ranges of \d+ calibration images from the feature pass [\d.]+ s, check on 24 images [\d.]+ s\.", train.Out);
        Assert.DoesNotContain("int8 features: ", train.Out, StringComparison.Ordinal);
        Assert.InRange(check.CalibrationImages, 1, new PrecisionOptions().CalibrationImages);
        // Bits named (as the deployed job names them): one graph, whatever this CPU has.
        Assert.Null(manifest.PortableGraph);
        Assert.Equal([ModelCheckpoint.OnnxFileName], Directory.GetFiles(output, "*.onnx").Select(Path.GetFileName));
    }

    [Fact]
    public async Task Train_Int8_WhoseCheckFails_ExitsWithTheFigures_KeepsTheFp32Model_AndPublishesNothing()
    {
        var output = temp.Combine("refused");
        var cli = new Cli();

        var train = await cli.RunAsync("train", "--data", Emoji("emoji"), "--output", output, "--plan", Plan(BrokenQuantizerPlan), "--precision", "int8", "--device", "cpu", "--publish");

        Assert.Equal(ExitCodes.Failure, train.ExitCode);
        Assert.Contains("--precision int8: the int8 graph's accuracy on the ", train.Err, StringComparison.Ordinal);
        Assert.Contains("points below fp32's", train.Err, StringComparison.Ordinal);
        Assert.Contains("not published", train.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("Published version", train.Out, StringComparison.Ordinal);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Equal(ModelPrecision.Fp32, manifest.Precision);
        Assert.False(manifest.Quantization!.Accepted);
        Assert.True(manifest.Quantization.AccuracyDropPoints > 0.5);
        Assert.Equal(manifest.Quantization.Fp32Bytes, new FileInfo(Path.Combine(output, ModelCheckpoint.OnnxFileName)).Length);
        Assert.Null(await Store(cli).GetCurrentAsync());
    }

    [Fact]
    public async Task Train_Auto_WithInt8Features_WhoseChecksFail_FallsBackToFp32Features_PublishesFp32_AndSaysWhy()
    {
        var output = temp.Combine("auto");
        var cli = new Cli();

        var train = await cli.RunAsync("train", "--data", Emoji("emoji"), "--output", output, "--plan", Plan(BrokenQuantizerInt8FeaturesPlan), "--device", "cpu", "--publish");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        Assert.Contains("Precision: fp32; the int8 graph was not kept", train.Out, StringComparison.Ordinal);
        Assert.Contains("Published version ", train.Out, StringComparison.Ordinal);
        // The head was first fitted on the (broken) int8 backbone's features; their check failed, so every image's fp32
        // features were extracted and the head fitted again on them; that model's int8 graph was then checked as before.
        Assert.Matches(@"int8 check of the head fitted on int8 features: on \d+ out-of-fold calibration images, .*: NOT met \(.+\), so every image's fp32 features are extracted and the head fitted again", train.Out);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Equal(ModelPrecision.Fp32, manifest.Precision);
        Assert.Equal("fp32", manifest.Training!.Probe!.FeaturePrecision);
        Assert.Equal(("out-of-fold", 24), (manifest.Quantization!.Evidence, manifest.Quantization.ValidationImages));
        Assert.Equal(24, manifest.Training.Probe.Images);
        Assert.False(manifest.Quantization!.Accepted);
        var html = await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml));
        Assert.Contains("The int8 graph is not served: the int8 graph&#39;s accuracy on the", html, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Publish_RefusesAnInt8ManifestWithoutAPassingCheck(bool withFailedCheck)
    {
        var folder = TestModels.SaveFolder(temp.Combine("model"), winner: 0);
        var path = Path.Combine(folder, ModelManifest.FileName);
        var manifest = JsonNode.Parse(await File.ReadAllTextAsync(path))!;
        manifest["precision"] = "int8";
        if (withFailedCheck)
        {
            manifest["quantization"] = JsonNode.Parse("""
                {"scheme": "QDQ", "calibrationImages": 8, "validationImages": 10, "fp32Accuracy": 0.9, "int8Accuracy": 0.8, "top1Agreement": 0.85,
                 "maxProbabilityDifference": 0.4, "maxAccuracyDropPoints": 0.5, "accepted": false, "fp32Bytes": 100, "int8Bytes": 30}
                """);
        }
        await File.WriteAllTextAsync(path, manifest.ToJsonString());
        var cli = new Cli();

        var publish = await cli.RunAsync("publish", "--model", folder);

        Assert.Equal(ExitCodes.Failure, publish.ExitCode);
        Assert.Contains("records no passing int8 check", publish.Err, StringComparison.Ordinal);
        Assert.Null(await Store(cli).GetCurrentAsync());
    }

    public void Dispose() => temp.Dispose();

    private static ModelStore Store(Cli cli) => new(new BlobContainerClient(TestStorage.ConnectionString, cli.ModelsContainer));

    private string Plan(string json)
    {
        var path = temp.Combine($"plan-{Guid.NewGuid():N}.json");
        File.WriteAllText(path, json);
        return path;
    }

    private string Emoji(string name) => TestAssets.EmojiByCategory(temp.Combine(name), 12, ("Flags", "flags"), ("Food & Drink", "food"));
}
