using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using ServerlessClassifier.TrainJob.Reports;
using SixLabors.ImageSharp.PixelFormats;
using ReportSkippedImage = ServerlessClassifier.TrainJob.Reports.SkippedImage;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// The train command on the real engine (TorchSharp, the default ImageNet backbone) and tiny sets of
/// generated colour images: option handling, output layout, reports, publishing, stage names,
/// interruption and resume.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class TrainCommandTests : IDisposable
{
    private const string HostileLabel = "<img src=x onerror=alert(1)>";
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Train_HeadMode_WritesModelAndReports_Publishes_ThenClassifies()
    {
        var data = Colours("colours", ("red", new Rgb24(220, 30, 30)), ("green", new Rgb24(30, 200, 40)), (HostileLabel, new Rgb24(30, 40, 220)));
        var output = temp.Combine("real");
        var cli = new Cli();

        var train = await cli.RunAsync("train", "--data", data, "--output", output, "--mode", "head", "--device", "cpu", "--publish");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        // Head mode with the default linear head fits the cross-validated linear probe: no epochs.
        Assert.Contains("Linear probe: 5-fold cross-validation chose L2", train.Out, StringComparison.Ordinal);
        var package = await ModelPackage.LoadAsync(output);
        Assert.Equal(18, package.Manifest.Training!.Probe!.Images); // refitted on every image
        Assert.Equal(2, package.Manifest.Head.PooledStages);
        // The features were chosen by cross-validation, layer4 alone against layer3+layer4, and the choice is recorded and printed.
        var choices = package.Manifest.Training.Probe.FeatureChoices;
        Assert.Equal(["layer3+layer4", "layer4"], choices.Select(c => c.Stages));
        var chosen = Assert.Single(choices, c => c.Chosen);
        Assert.Equal(choices.Min(c => c.Loss), chosen.Loss);
        Assert.Equal(chosen.Stages, package.Manifest.Training.Probe.Features);
        Assert.Contains($"Features: {chosen.Stages}, chosen by out-of-fold log-loss among layer3+layer4 ", train.Out, StringComparison.Ordinal);
        Assert.Equal([HostileLabel, "green", "red"], package.Manifest.Labels);
        Assert.Equal("onnx-resnet18", package.Manifest.Backbone);
        Assert.NotNull(package.FindFile(ModelFileRoles.Onnx));

        var html = await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml));
        Assert.DoesNotContain(HostileLabel, html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html, StringComparison.Ordinal);
        Assert.Contains("<h2>Calibration</h2>", html, StringComparison.Ordinal);
        Assert.Contains("aria-label=\"Reliability diagram\"><svg", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<?xml", html, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson)));
        Assert.Equal(1, json.RootElement.GetProperty("history").GetArrayLength()); // one fit, no epochs
        var probe = json.RootElement.GetProperty("probe");
        Assert.InRange(json.RootElement.GetProperty("calibration").GetProperty("eceAfter").GetDouble(), 0, 1);
        Assert.Equal(package.Manifest.Training.Probe.Lambda, probe.GetProperty("lambda").GetDouble());
        Assert.Equal(package.Manifest.Training.Calibration!.Temperature, json.RootElement.GetProperty("calibration").GetProperty("temperature").GetDouble());
        Assert.Equal(package.Manifest.Metrics!.Accuracy, json.RootElement.GetProperty("validation").GetProperty("accuracy").GetDouble());
        // Where the time went: every stage in order, in report.json, the output and report.html.
        var steps = json.RootElement.GetProperty("steps").EnumerateArray().Select(s => (Step: s.GetProperty("step").GetString(), Seconds: s.GetProperty("seconds").GetDouble())).ToList();
        Assert.Equal(["inputs", "fit", "calibration", "out-of-distribution", "export and parity check", "precision (int8 build and check)", "save"], steps.Select(s => s.Step));
        Assert.All(steps, s => Assert.InRange(s.Seconds, 0, 3600));
        Assert.True(steps.Single(s => s.Step == "inputs").Seconds > 0 && steps.Single(s => s.Step == "fit").Seconds > 0, $"{string.Join(", ", steps)}");
        var times = string.Create(CultureInfo.InvariantCulture, $"inputs {steps[0].Seconds:F1} s, fit {steps[1].Seconds:F1} s, calibration {steps[2].Seconds:F1} s, ");
        Assert.Contains($"Time: {times}", train.Out, StringComparison.Ordinal);
        Assert.Contains($"<h2>Time</h2>\n<p>{times}", html, StringComparison.Ordinal);

        var version = train.Out.Split('\n').Single(l => l.StartsWith("Published version ", StringComparison.Ordinal)).Split(' ')[2];
        var list = await cli.RunAsync("models", "list");
        Assert.Contains(version, list.Out, StringComparison.Ordinal);

        var classify = await cli.RunAsync("classify", "--model", output, "--json", Path.Combine(data, "red", "5.png"), Path.Combine(data, HostileLabel, "0.png"));
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        var labels = classify.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("top")[0].GetProperty("label").GetString())
            .ToList();
        Assert.Equal(["red", HostileLabel], labels);
    }

    [Fact]
    public async Task Train_Finetune_RefitsOnTheStartsFeaturesWhenTheStartIsKept_AndOnFreshFeaturesWhenAnEpochIs()
    {
        var data = Colours("refit", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var epochKept = temp.Combine("epoch-kept.json");
        // The mean of the epochs kept without the margin: the served backbone is a trained one whatever the split says.
        await File.WriteAllTextAsync(epochKept, """{ "mode": "finetune", "epochs": 1, "weightInterpolation": 1, "averagedModelNeedsMargin": false, "precision": { "precision": "fp32" } }""");
        var startKept = temp.Combine("start-kept.json");
        await File.WriteAllTextAsync(startKept, """{ "mode": "finetune", "epochs": 1, "precision": { "precision": "fp32" } }""");

        // A learning rate that wrecks the network in one step: the start is kept, so the backbone is the pretrained one whose
        // features the probe start already computed.
        var kept = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("start"), "--plan", startKept, "--lr", "9", "--device", "cpu");
        var trained = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("epoch"), "--plan", epochKept, "--device", "cpu");

        Assert.True(kept.ExitCode == ExitCodes.Ok, kept.All);
        Assert.Contains("No epoch beat the start clearly: the start is kept", kept.Out, StringComparison.Ordinal);
        // The fine-tune's pass over the frozen stages has a progress line of its own, named for what it runs.
        Assert.Matches(@"(?m)^frozen prefix: 100 % \([0-9]+/[0-9]+\)", kept.Out);
        Assert.Matches(@"Head refitted as a linear probe on the kept backbone \(epoch 0\) over all [0-9]+ images: .*; the start's features reused \(the kept backbone is the pretrained one\)", kept.Out);
        Assert.True(trained.ExitCode == ExitCodes.Ok, trained.All);
        Assert.Matches(@"Head refitted as a linear probe on the kept backbone \(epoch 1\) over all [0-9]+ images: .*; features [0-9.]+ s, ", trained.Out);
        Assert.DoesNotContain("the start's features reused", trained.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_Finetune_ChannelsLastSuffix_TrainsOnChannelsLastBatches_AndNeedsTheCachedPrefix()
    {
        var data = Colours("channels-last", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var plan = temp.Combine("channels-last.json");
        await File.WriteAllTextAsync(plan, """{ "mode": "finetune", "epochs": 1, "channelsLastSuffix": true, "precision": { "precision": "fp32" } }""");
        var noPrefix = temp.Combine("channels-last-no-prefix.json");
        await File.WriteAllTextAsync(noPrefix, """{ "mode": "finetune", "epochs": 1, "prefixViews": 0, "channelsLastSuffix": true }""");

        var run = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("cl-model"), "--plan", plan, "--device", "cpu");
        var refused = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("cl-refused"), "--plan", noPrefix, "--device", "cpu");

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("channels-last suffix yes", run.Out, StringComparison.Ordinal);
        Assert.Matches(@"Frozen prefix \(stem\.\.layer3\) .*, read in channels-last order\. Only layer4 and the head run each epoch\.", run.Out);
        Assert.Matches(@"epoch 1/1: .*; [0-9]+\.[0-9] images/s", run.Out);
        Assert.NotEqual(ExitCodes.Ok, refused.ExitCode);
        Assert.Contains("Channels-last suffix: needs the cached prefix", refused.All, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_FinetuneUnfreezeLayer1_TrainsLayer1AndLeavesTheOtherStagesAsPretrained()
    {
        var data = Colours("stages", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var output = temp.Combine("layer1");

        var run = await new Cli().RunAsync("train", "--data", data, "--output", output, "--mode", "finetune", "--unfreeze", "layer1", "--epochs", "1", "--device", "cpu");

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("unfreeze layer1", run.Out, StringComparison.Ordinal);
        var package = await ModelPackage.LoadAsync(output);
        Assert.Equal(["layer1"], package.Manifest.Training!.UnfreezeStages);
        using var trained = ModelCheckpoint.CreateTorchModel(package);
        using var pretrained = OnnxResNetImporter.LoadBackbone(Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.ModelFileName));
        var original = pretrained.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        List<string> Changed(IEnumerable<(string Name, TorchSharp.torch.Tensor Value)> parameters) => [.. parameters
            .Where(p => !p.Value.allclose(original[p.Name], rtol: 0, atol: 0))
            .Select(p => p.Name.Split('.')[0])
            .Distinct()];
        // The served model is the epoch with the lowest validation loss, which may be the start (epoch 0, nothing changed).
        var served = Changed(trained.Backbone.named_parameters().Select(p => (p.name, (TorchSharp.torch.Tensor)p.parameter)));
        Assert.Equal(package.Manifest.Training!.BestEpoch == 0 ? [] : ["layer1"], served);
        // What the epoch trained: the last weights in the resume checkpoint.
        var weights = Directory.GetFiles(Path.Combine(output, TrainCommand.CheckpointsFolder), "resume-e*-weights.safetensors").Order(StringComparer.Ordinal).Last();
        var last = TorchSharp.PyBridge.Safetensors.LoadStateDict(weights);
        Assert.Equal(["layer1"], Changed(last.Where(p => p.Key.StartsWith("backbone.", StringComparison.Ordinal) && original.ContainsKey(p.Key["backbone.".Length..]))
            .Select(p => (p.Key["backbone.".Length..], p.Value))));
    }

    [Fact]
    public async Task Train_InterruptedFinetune_ResumesFromOutputAlone_WithTheSavedNonDefaultSettings()
    {
        var data = Colours("resume", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var output = temp.Combine("interrupted");
        using var cancellation = new CancellationTokenSource();
        var cli = new Cli { OnOutputLine = line => { if (line.StartsWith("epoch 1/3", StringComparison.Ordinal)) { cancellation.Cancel(); } } };

        var first = await cli.RunAsync(cancellation.Token, "train", "--data", data, "--output", output, "--mode", "finetune", "--unfreeze", "layer3,layer4",
            "--epochs", "3", "--batch-size", "5", "--lr", "0.003", "--seed", "11", "--val-split", "0.25", "--device", "cpu");

        Assert.True(first.ExitCode == ExitCodes.Cancelled, first.All);
        Assert.Contains($"train --output {output} --resume", first.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(output, ModelManifest.FileName)));

        var conflicting = await new Cli().RunAsync("train", "--output", output, "--resume", "--batch-size", "6");
        Assert.Equal(ExitCodes.Usage, conflicting.ExitCode);
        Assert.Contains("--resume continues the run with the plan it was started with: batch size was 5, not 6", conflicting.Err, StringComparison.Ordinal);

        var resumed = await new Cli().RunAsync("train", "--output", output, "--resume");

        Assert.True(resumed.ExitCode == ExitCodes.Ok, resumed.All);
        Assert.Contains("Resumed from", resumed.Out, StringComparison.Ordinal);
        // The fast path: layer3 and layer4 train on the cached output of stem..layer2, and each epoch says how fast it ran.
        Assert.Contains("Frozen prefix (stem..layer2)", resumed.Out, StringComparison.Ordinal);
        Assert.Matches(@"epoch 3/3: .*; [0-9]+\.[0-9] images/s", resumed.Out);
        var training = (await ModelPackage.LoadAsync(output)).Manifest.Training!;
        // Which epoch was kept and why, from the start's per-image validation losses that the checkpoint carried over.
        Assert.Matches(@"^(Kept epoch [1-3]: validation loss [0-9.]+ vs start [0-9.]+, difference [0-9.]+ ± [0-9.]+ \(2 SE needed: [0-9.]+\)|No epoch beat the start clearly: the start is kept \(the nearest the bar, epoch [1-3], was -?[0-9.]+ ± [0-9.]+ below it on the validation loss: -?[0-9.]+ standard errors, 2 needed\))", training.KeptEpochReason);
        Assert.Contains(training.KeptEpochReason!, resumed.Out, StringComparison.Ordinal);
        using (var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson))))
        {
            Assert.All(json.RootElement.GetProperty("history").EnumerateArray(), e => Assert.True(e.GetProperty("imagesPerSecond").GetDouble() > 0));
            Assert.Contains(training.KeptEpochReason, json.RootElement.GetProperty("notes").EnumerateArray().Select(n => n.GetString()));
        }
        Assert.DoesNotContain("epoch 1/3", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("epoch 3/3", resumed.Out, StringComparison.Ordinal);
        Assert.Equal(["layer3", "layer4"], training.UnfreezeStages);
        Assert.Equal((5, 0.003, 11, 0.25), (training.BatchSize, training.LearningRate, training.Seed, training.ValidationSplit));
        Assert.Equal(3, training.Epochs);
    }

    [Fact]
    public async Task Train_WithCheckpointsInStorage_SurvivesTheLossOfTheMachine_AndAStoredRunOfAnotherPlanIsReplaced()
    {
        var data = Colours("stored", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));
        var cli = new Cli();
        var containerName = cli.ModelsContainer.Replace("models-", "ckpt-", StringComparison.Ordinal);
        var stored = new Azure.Storage.Blobs.BlobContainerClient(TestStorage.ConnectionString, containerName);
        string[] Train(string output, string lr) => ["train", "--data", data, "--output", output, "--mode", "finetune", "--epochs", "3", "--batch-size", "5",
            "--lr", lr, "--seed", "3", "--device", "cpu", "--checkpoints", $"{containerName}/runs/nightly"];
        async Task<CliRun> Interrupted(string output, string lr)
        {
            using var cancellation = new CancellationTokenSource();
            var interrupting = new Cli { OnOutputLine = line => { if (line.StartsWith("epoch 1/3", StringComparison.Ordinal)) { cancellation.Cancel(); } } };
            var run = await interrupting.RunAsync(cancellation.Token, Train(output, lr));
            Assert.True(run.ExitCode == ExitCodes.Cancelled, run.All);
            return run;
        }
        async Task<List<string>> StoredNames()
        {
            var names = new List<string>();
            await foreach (var blob in stored.GetBlobsAsync(Azure.Storage.Blobs.Models.BlobTraits.None, Azure.Storage.Blobs.Models.BlobStates.None, "runs/nightly/", CancellationToken.None))
            {
                names.Add(blob.Name["runs/nightly/".Length..]);
            }
            return names;
        }

        // A run on one machine stops after its first epoch; the storage holds run.json and that epoch's files.
        await Interrupted(temp.Combine("machine-1"), "0.003");
        Assert.Equal(["resume-e0001-best.safetensors", "resume-e0001-optimizer.bin", "resume-e0001-weights.safetensors", "run.json"], (await StoredNames()).Order(StringComparer.Ordinal));

        // The same command with another learning rate on a second machine: the stored run is not its own, so it starts anew
        // in its place (and stops after its first epoch too).
        var replacing = await Interrupted(temp.Combine("machine-2"), "0.004");
        Assert.Contains("Restored the checkpoint of an interrupted run", replacing.Out, StringComparison.Ordinal);
        Assert.Contains("was made with another plan (learning rate was 0.003, not 0.004): starting a new run in its place", replacing.Out, StringComparison.Ordinal);

        // The machine is lost with its disk: the very same command on a third machine continues after epoch 1, with lr 0.004.
        var output = temp.Combine("machine-3");
        var resumed = await cli.RunAsync(Train(output, "0.004"));

        Assert.True(resumed.ExitCode == ExitCodes.Ok, resumed.All);
        Assert.Contains("Restored the checkpoint of an interrupted run", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("Resumed from", resumed.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("epoch 1/3", resumed.Out, StringComparison.Ordinal);
        Assert.Contains("epoch 3/3", resumed.Out, StringComparison.Ordinal);
        var training = (await ModelPackage.LoadAsync(output)).Manifest.Training!;
        Assert.Equal((0.004, 3), (training.LearningRate, training.Epochs));
        // The run completed: nothing is left for the next run of the command to continue.
        Assert.Empty(await StoredNames());
    }

    [Theory]
    [InlineData("resnet18")]
    [InlineData("resnet50")]
    public async Task Train_ArchitectureIdWithoutWeights_IsRefused_AndNamesTheWayToAskForRandomWeights(string id)
    {
        var data = Colours("refused", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));

        var run = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine($"refused-{id}"), "--backbone", id, "--device", "cpu");

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains($"random:{id}", run.Err, StringComparison.Ordinal);
        Assert.Contains("pretrained", run.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.Combine($"refused-{id}")));
    }

    [Fact]
    public async Task Train_RandomBackboneAskedForExplicitly_TrainsAndWarnsOnStderr()
    {
        var data = Colours("random", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));

        var run = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("random-out"), "--backbone", "random:resnet18", "--device", "cpu");

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("warning: Backbone resnet18 has no pretrained weights", run.Err, StringComparison.Ordinal);
        Assert.Equal("resnet18", (await ModelPackage.LoadAsync(temp.Combine("random-out"))).Manifest.Backbone);
    }

    [Fact]
    public async Task Train_UnfreezeNamesTheStagesOfTheBackbonesArchitecture()
    {
        var data = Colours("vgg-stages", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));

        var run = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("vgg-stages-out"), "--backbone", "random:vgg11", "--mode", "finetune", "--unfreeze", "layer4", "--device", "cpu");

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("unknown stage \"layer4\"; the stages of vgg11 are block1, block2, block3, block4, block5, classifier", run.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(temp.Combine("vgg-stages-out")));
    }

    [Fact]
    public async Task Train_InputSizeTheArchitectureCannotTake_IsAUsageError()
    {
        var data = Colours("small", ("red", new Rgb24(220, 30, 30)), ("blue", new Rgb24(30, 40, 220)));

        var alexnet = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("small-alexnet"), "--backbone", "random:alexnet", "--input-size", "48");
        var onnx = await new Cli().RunAsync("train", "--data", data, "--output", temp.Combine("small-default"), "--input-size", "128");

        Assert.Equal(ExitCodes.Usage, alexnet.ExitCode);
        Assert.Contains("alexnet takes inputs of at least 63 x 63 pixels, not 48", alexnet.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, onnx.ExitCode);
        Assert.Contains("onnx-resnet18 takes 224 x 224 inputs only", onnx.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_RefusesANonEmptyOutputWithoutResume()
    {
        var output = temp.Combine("used");
        Directory.CreateDirectory(output);
        await File.WriteAllTextAsync(Path.Combine(output, "something.txt"), "x");

        var run = await new Cli().RunAsync("train", "--data", temp.Path, "--output", output);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--output", run.Err, StringComparison.Ordinal);
        Assert.Contains("--resume", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_FlipAndNoFlipTogether_IsAUsageError()
    {
        var run = await new Cli().RunAsync("train", "--data", temp.Combine("none"), "--output", temp.Combine("flips"), "--flip", "--no-flip");

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--flip", run.Err, StringComparison.Ordinal);
        Assert.Contains("--no-flip", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void Report_EscapesHostileLabelsFileNamesAndMessages()
    {
        string[] labels = ["cat", HostileLabel, "../<script>alert(2)</script>"];
        var report = new TrainingReport
        {
            Title = "t",
            Settings = [new("data", "<b>folder</b>")],
            Labels = labels,
            Data = new DataCounts(labels.ToDictionary(l => l, _ => 3), labels.ToDictionary(l => l, _ => 1)),
            History = [new EpochMetrics(1, 1.0, 0.5, 1.1, 0.4, 1e-3, 1), new EpochMetrics(2, 0.7, 0.7, 0.9, 0.6, 1e-3, 1)],
            Validation = Evaluation.Compute(labels, [(labels[0], labels[0]), (labels[1], labels[2]), (labels[2], labels[1])]),
            Skipped = [new ReportSkippedImage("<script>x</script>.png", "Corrupt: <b>bad</b>")],
        };

        var html = HtmlReport.Render(report);

        Assert.DoesNotContain(HostileLabel, html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("<b>folder</b>", html, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>bad</b>", html, StringComparison.Ordinal);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;x&lt;/script&gt;.png", html, StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();

    /// <summary>Six noisy 40 px images per class, one flat colour each: easy for a pretrained backbone.</summary>
    private string Colours(string name, params (string Label, Rgb24 Colour)[] classes) => ColourSets.Write(temp.Combine(name), classes);
}
