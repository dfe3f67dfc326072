using System.Text.Json;
using System.Text.Json.Nodes;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.TrainJob.Cli;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// <c>train</c> through the real CLI and engine on tiny sets (a random-init ResNet-18 at 32 px): every plan goes through
/// every stage of the pipeline, so every mode's published model has a verified graph, a calibration and out-of-distribution
/// statistics; the plan is the one thing <c>--resume</c> compares; options a mode cannot honour are refused.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class TrainingPlanTests : IDisposable
{
    private static readonly string[] Small = ["--backbone", "random:resnet18", "--input-size", "32", "--device", "cpu"];

    private readonly TempFolder temp = new();

    /// <summary>One case per pipeline the engine has: head (features), finetune on the cached prefix (with its refit), finetune on images, full.</summary>
    public static TheoryData<string, string[], string> Plans => new()
    {
        { "head", ["--mode", "head"], "out-of-fold" },
        { "finetune-prefix", ["--mode", "finetune", "--epochs", "1"], "out-of-fold" },
        { "finetune-images", ["--mode", "finetune", "--unfreeze", "layer1", "--epochs", "1"], "validation" },
        { "full", ["--mode", "full", "--epochs", "1"], "validation" },
    };

    [Theory]
    [MemberData(nameof(Plans))]
    public async Task EveryMode_PublishesAVerifiedGraph_ACalibration_AndOutOfDistributionStatistics(string name, string[] mode, string evidence)
    {
        var data = ColourSets.Write(temp.Combine($"data-{name}"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)), ("green", new Rgb24(30, 200, 40)));
        var output = temp.Combine(name);
        var cli = new Cli();

        var train = await cli.RunAsync(["train", "--data", data, "--output", output, .. mode, .. Small, "--publish"]);

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        Assert.Contains("Plan: mode ", train.Out, StringComparison.Ordinal);
        var package = await ModelPackage.LoadAsync(output); // every file's size and SHA-256 checked
        var manifest = package.Manifest;
        var verification = manifest.Verification ?? throw new Xunit.Sdk.XunitException($"{name}: no export verification in the manifest");
        Assert.True(verification.Images > 0 && verification.MaxProbabilityDifference <= OnnxExport.DefaultTolerance, $"{name}: {verification}");
        var calibration = manifest.Training!.Calibration ?? throw new Xunit.Sdk.XunitException($"{name}: no calibration in the manifest");
        Assert.Equal(evidence, calibration.Evidence);
        Assert.True(calibration.Temperature > 0 && calibration.Images > 0, $"{name}: {calibration}");
        Assert.True(calibration.NllAfter <= calibration.NllBefore + 1e-9, $"{name}: calibration made the log-loss worse ({calibration.NllBefore} -> {calibration.NllAfter})");
        Assert.NotNull(manifest.OutOfDistribution);
        Assert.NotNull(package.ReadOutOfDistribution());

        // Served from the store as published: every prediction carries the out-of-distribution score.
        var classify = await cli.RunAsync("classify", "--model", "current", "--json", Path.Combine(data, "red", "0.png"));
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        using var prediction = JsonDocument.Parse(classify.Out);
        Assert.True(prediction.RootElement.TryGetProperty("outOfDistribution", out var score) && score.ValueKind == JsonValueKind.Number, $"{name}: {classify.Out}");
    }

    [Fact]
    public async Task Resume_RefusesAnyOptionThatChangesThePlan_NamingIt_AndContinuesWithTheSameOnesOrAnotherDevice()
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var other = ColourSets.Write(temp.Combine("other"), ("red", new Rgb24(200, 50, 50)), ("blue", new Rgb24(50, 50, 200)));
        var output = temp.Combine("run");
        var cli = new Cli();
        var first = await cli.RunAsync(["train", "--data", data, "--output", output, "--mode", "finetune", "--epochs", "1", "--precision", "fp32", .. Small]);
        Assert.True(first.ExitCode == ExitCodes.Ok, first.All);

        (string[] Options, string Says)[] changes =
        [
            (["--epochs", "2"], "epochs was 1, not 2"),
            (["--batch-size", "4"], "batch size was 32, not 4"),
            (["--lr", "0.01"], "learning rate was 0.001, not 0.01"),
            (["--seed", "7"], "seed was 42, not 7"),
            (["--val-split", "0.3"], "validation split was 0.2, not 0.3"),
            (["--input-size", "48"], "input size was 32, not 48"),
            (["--unfreeze", "layer3"], "unfrozen stages was layer4, not layer3"),
            (["--no-flip"], "mirror augmentation was yes, not no"),
            (["--precision", "int8"], "precision was fp32, not int8"),
            (["--backbone", "random:resnet34"], "backbone was random:resnet18, not random:resnet34"),
            (["--data", other], $"data was {data}, not {other}"),
            (["--mode", "full"], "mode was finetune, not full"),
        ];
        foreach (var (options, says) in changes)
        {
            var resumed = await cli.RunAsync(["train", "--output", output, "--resume", .. options]);
            Assert.True(resumed.ExitCode == ExitCodes.Usage, $"{string.Join(' ', options)}: {resumed.All}");
            Assert.Contains(says, resumed.Err, StringComparison.Ordinal);
        }

        // The same options again, or another device (it changes no result): the run continues.
        var same = await cli.RunAsync(["train", "--output", output, "--resume", "--epochs", "1", "--mode", "finetune", "--device", "cpu"]);
        Assert.True(same.ExitCode == ExitCodes.Ok, same.All);
        Assert.Contains("Resumed from", same.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("weightsFile", "../../outside.safetensors")]
    [InlineData("bestWeightsFile", "/tmp/outside.safetensors")]
    [InlineData("optimizerFile", "..")]
    public async Task Resume_RefusesARunJsonWhoseEpochFilesAreNotPlainNames(string field, string name)
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var output = temp.Combine("run");
        var cli = new Cli();
        var first = await cli.RunAsync(["train", "--data", data, "--output", output, "--mode", "finetune", "--epochs", "1", "--precision", "fp32", .. Small]);
        Assert.True(first.ExitCode == ExitCodes.Ok, first.All);
        var runJson = Path.Combine(output, "checkpoints", "run.json");
        var record = JsonNode.Parse(await File.ReadAllTextAsync(runJson))!;
        Assert.NotNull(record["epochs"]?[field]);
        record["epochs"]![field] = name;
        await File.WriteAllTextAsync(runJson, record.ToJsonString());

        var resumed = await cli.RunAsync(["train", "--output", output, "--resume", "--device", "cpu"]);

        Assert.True(resumed.ExitCode == ExitCodes.Usage, resumed.All);
        Assert.Contains("run.json", resumed.Err, StringComparison.Ordinal);
        Assert.Contains($"{JsonSerializer.Serialize(name)}, which is not a plain file name", resumed.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("Resumed from", resumed.Out, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--epochs", "3", "head mode fits its linear probe to convergence")]
    [InlineData("--batch-size", "8", "head mode fits its linear probe on every image at once")]
    [InlineData("--lr", "0.01", "head mode fits its linear probe with L-BFGS")]
    public async Task HeadMode_RefusesOptionsItCannotHonour(string option, string value, string why)
    {
        var data = ColourSets.Write(temp.Combine("head"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));

        var run = await new Cli().RunAsync(["train", "--data", data, "--output", temp.Combine("out"), option, value, .. Small]);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains($"{option} does not apply here: {why}", run.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.Combine("out")));
    }

    /// <summary>The int8 graph's weight bits (for the CPU that will serve it): a value that is not 8, 7 or auto, or that cannot apply, is refused before any work.</summary>
    [Theory]
    [InlineData("", "--int8-weight-bits|9", "'9'")]
    [InlineData("", "--int8-weight-bits|7|--precision|fp32", "--int8-weight-bits chooses the int8 graph's weights, and --precision fp32 makes no int8 graph")]
    [InlineData("""{ "mode": "head", "precision": { "int8WeightBits": 6 } }""", "", "int8 weight bits 6: 8 (serving CPUs with VNNI), 7 (any x86 CPU, AVX2 included) or auto")]
    [InlineData("""{ "mode": "head", "precision": { "int8WeightBits": 8, "quantizer": { "weightLevels": 63 } } }""", "", "int8 weight bits 8 contradicts int8 weight levels 63")]
    public async Task Int8WeightBits_RefusesWhatItCannotMake_SayingWhy(string planFile, string options, string says)
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        string[] plan = [];
        if (planFile.Length > 0)
        {
            await File.WriteAllTextAsync(temp.Combine("plan.json"), planFile);
            plan = ["--plan", temp.Combine("plan.json")];
        }

        var run = await new Cli().RunAsync(["train", "--data", data, "--output", temp.Combine("out"), .. plan, .. options.Split('|', StringSplitOptions.RemoveEmptyEntries), .. Small]);

        Assert.True(run.ExitCode == ExitCodes.Usage, run.All);
        Assert.Contains(says, run.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.Combine("out")));
    }

    [Fact]
    public async Task PlanFile_CarriesSettingsWithoutAnOption_AndTheRunRecordsThem()
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var plan = temp.Combine("plan.json");
        await File.WriteAllTextAsync(plan, """{ "mode": "finetune", "epochs": 1, "patience": 0, "labelSmoothing": 0, "start": "random", "refitHead": false, "precision": { "precision": "fp32" } }""");
        var output = temp.Combine("out");

        var run = await new Cli().RunAsync(["train", "--data", data, "--output", output, "--plan", plan, .. Small]);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("head start random", run.Out, StringComparison.Ordinal);
        Assert.Contains("label smoothing 0;", run.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("Head initialised from a linear probe", run.Out, StringComparison.Ordinal);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Null(manifest.Training!.Probe); // no refit
        Assert.Equal("validation", manifest.Training.Calibration!.Evidence);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "report.json")));
        Assert.Equal("random", report.RootElement.GetProperty("settings").GetProperty("head start").GetString());

        var typo = temp.Combine("typo.json");
        await File.WriteAllTextAsync(typo, """{ "mode": "finetune", "epochz": 1 }""");
        var refused = await new Cli().RunAsync(["train", "--data", data, "--output", temp.Combine("typo-out"), "--plan", typo, .. Small]);
        Assert.Equal(ExitCodes.Usage, refused.ExitCode);
        Assert.Contains("epochz", refused.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PlanFile_WeightInterpolation_ServesTheAveragedModel_SaysSo_AndRefusesBadValues()
    {
        var data = ColourSets.Write(temp.Combine("data"), ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var plan = temp.Combine("plan.json");
        await File.WriteAllTextAsync(plan, """{ "mode": "finetune", "epochs": 2, "patience": 0, "weightInterpolation": 0.5, "averagedModelNeedsMargin": false, "precision": { "precision": "fp32" } }""");
        var output = temp.Combine("out");

        var run = await new Cli().RunAsync(["train", "--data", data, "--output", output, "--plan", plan, .. Small]);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("weight interpolation 0.5; averaged model needs the margin no;", run.Out, StringComparison.Ordinal);
        Assert.Contains("Kept the mean of epochs 1-2 interpolated 0.5 of the way from the start without the margin", run.Out, StringComparison.Ordinal);
        var training = (await ModelPackage.LoadAsync(output)).Manifest.Training!;
        Assert.Equal(2, training.AveragedEpochs);
        Assert.Equal(0.5, training.WeightInterpolation);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, "report.json")));
        Assert.Contains(report.RootElement.GetProperty("notes").EnumerateArray(), n => n.GetString()!.Contains("Kept the mean of epochs 1-2", StringComparison.Ordinal));
        Assert.Contains("(the start moved towards the mean of epochs 1-2: see the notes)", await File.ReadAllTextAsync(Path.Combine(output, "report.html")), StringComparison.Ordinal);

        foreach (var (settings, says) in new[]
        {
            ("\"weightInterpolation\": 1.5", "Weight interpolation 1.5: in (0, 1]"),
            ("\"weightInterpolation\": 0", "Weight interpolation 0: in (0, 1]"),
            ("\"weightInterpolation\": 0.5, \"start\": \"random\"", "Weight interpolation: needs a probe start"),
        })
        {
            var bad = temp.Combine("bad.json");
            await File.WriteAllTextAsync(bad, $$"""{ "mode": "finetune", {{settings}} }""");
            var refused = await new Cli().RunAsync(["train", "--data", data, "--output", temp.Combine("bad-out"), "--plan", bad, .. Small]);
            Assert.True(refused.ExitCode == ExitCodes.Usage, refused.All);
            Assert.Contains(says, refused.Err, StringComparison.Ordinal);
        }
    }

    public void Dispose() => temp.Dispose();
}
