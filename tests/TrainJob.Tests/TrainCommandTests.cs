using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Training;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands;
using ServerlessClassifier.TrainJob.Reports;
using ReportSkippedImage = ServerlessClassifier.TrainJob.Reports.SkippedImage;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// The train command around a stand-in engine (the real one plugs into the same <see cref="ITrainingRunner"/>
/// seam): option handling, output layout, reports, publishing, interruption.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class TrainCommandTests : IDisposable
{
    private const string HostileLabel = "<img src=x onerror=alert(1)>";
    private readonly TempFolder temp = new();

    public TrainCommandTests()
    {
        var emoji = TestAssets.SampleEmoji(4);
        foreach (var (label, files) in new[] { ("cats", emoji.Take(2)), ("dogs", emoji.Skip(2)) })
        {
            Directory.CreateDirectory(temp.Combine("data", label));
            foreach (var file in files)
            {
                File.Copy(file, temp.Combine("data", label, Path.GetFileName(file)));
            }
        }
    }

    [Fact]
    public async Task Train_WritesModelAndReportsAndPublishes()
    {
        var runner = new FakeRunner();
        var cli = new Cli { Runner = runner };
        var output = temp.Combine("out");

        var run = await cli.RunAsync("train", "--data", temp.Combine("data"), "--output", output, "--mode", "finetune", "--unfreeze", "2",
            "--epochs", "3", "--device", "cpu", "--seed", "7", "--publish");

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        var request = runner.Request!;
        Assert.Equal(TrainingMode.Finetune, request.Mode);
        Assert.Equal(["layer3", "layer4"], request.UnfreezeStages);
        Assert.Equal(3, request.Epochs);
        Assert.Equal(7, request.Seed);
        Assert.Equal("cpu", request.Device);
        Assert.Equal(Path.Combine(output, TrainCommand.CheckpointsFolder), request.CheckpointDirectory);
        Assert.True(Directory.Exists(request.CheckpointDirectory));
        Assert.Contains("epoch 2/3", run.Out, StringComparison.Ordinal);

        var package = await ModelPackage.LoadAsync(output);
        Assert.Equal(0.25, package.Manifest.ConfidenceThreshold);
        Assert.Equal(0.5, package.Manifest.Metrics!.Accuracy);
        Assert.Equal("finetune", package.Manifest.Training!.Mode);
        Assert.NotNull(package.FindFile(ModelFileRoles.Onnx));

        var html = await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml));
        Assert.DoesNotContain(HostileLabel, html, StringComparison.Ordinal);
        Assert.DoesNotContain("<script", html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("&lt;img src=x onerror=alert(1)&gt;", html, StringComparison.Ordinal);
        Assert.Contains("<svg", html, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson)));
        Assert.Equal(0.5, json.RootElement.GetProperty("validation").GetProperty("accuracy").GetDouble());
        Assert.Equal(3, json.RootElement.GetProperty("history").GetArrayLength());

        var version = run.Out.Split('\n').Single(l => l.StartsWith("Published version ", StringComparison.Ordinal)).Split(' ')[2];
        var list = await cli.RunAsync("models", "list");
        Assert.Contains(version, list.Out, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_RefusesANonEmptyOutputWithoutResume()
    {
        var output = temp.Combine("used");
        Directory.CreateDirectory(output);
        await File.WriteAllTextAsync(Path.Combine(output, "something.txt"), "x");

        var run = await new Cli { Runner = new FakeRunner() }.RunAsync("train", "--data", temp.Combine("data"), "--output", output);

        Assert.Equal(ExitCodes.Usage, run.ExitCode);
        Assert.Contains("--output", run.Err, StringComparison.Ordinal);
        Assert.Contains("--resume", run.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_Interrupted_KeepsTheCheckpointAndSaysHowToResume()
    {
        using var cancellation = new CancellationTokenSource();
        var runner = new FakeRunner { OnTrain = request =>
        {
            File.WriteAllText(Path.Combine(request.CheckpointDirectory, "last.ckpt"), "state");
            cancellation.Cancel();
        } };
        var output = temp.Combine("interrupted");
        var cli = new Cli { Runner = runner };

        var run = await cli.RunAsync(cancellation.Token, "train", "--data", temp.Combine("data"), "--output", output, "--device", "cpu");

        Assert.Equal(ExitCodes.Cancelled, run.ExitCode);
        Assert.Contains("--resume", run.Err, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(output, TrainCommand.CheckpointsFolder, "last.ckpt")));
        Assert.False(File.Exists(Path.Combine(output, ModelManifest.FileName)));

        runner.OnTrain = null;
        var resumed = await cli.RunAsync("train", "--data", temp.Combine("data"), "--output", output, "--device", "cpu", "--resume");
        Assert.True(resumed.ExitCode == ExitCodes.Ok, resumed.All);
        Assert.True(runner.Request!.Resume);
    }

    [Fact]
    public async Task Train_WithTheRealEngine_HeadMode_LearnsColoursThenClassifiesThem()
    {
        // Three visually distinct classes of real-looking images; the default pretrained backbone at 224 px.
        var data = temp.Combine("colours");
        var colours = new Dictionary<string, SixLabors.ImageSharp.PixelFormats.Rgb24>
        {
            ["red"] = new(220, 30, 30),
            ["green"] = new(30, 200, 40),
            ["blue"] = new(30, 40, 220),
        };
        var random = new Random(3);
        foreach (var (label, colour) in colours)
        {
            Directory.CreateDirectory(Path.Combine(data, label));
            for (var i = 0; i < 6; i++)
            {
                using var image = new SixLabors.ImageSharp.Image<SixLabors.ImageSharp.PixelFormats.Rgb24>(40, 40);
                for (var y = 0; y < 40; y++)
                {
                    for (var x = 0; x < 40; x++)
                    {
                        var noise = random.Next(-40, 41);
                        image[x, y] = new((byte)Math.Clamp(colour.R + noise, 0, 255), (byte)Math.Clamp(colour.G + noise, 0, 255), (byte)Math.Clamp(colour.B + noise, 0, 255));
                    }
                }
                await SixLabors.ImageSharp.ImageExtensions.SaveAsPngAsync(image, Path.Combine(data, label, $"{i}.png"));
            }
        }
        var output = temp.Combine("real");

        var train = await new Cli().RunAsync("train", "--data", data, "--output", output, "--mode", "head", "--epochs", "15", "--device", "cpu");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        var package = await ModelPackage.LoadAsync(output);
        // Head mode with a linear head fits the cross-validated linear probe (no epochs).
        Assert.NotNull(package.Manifest.Training!.Probe);
        Assert.Equal(18, package.Manifest.Training.Probe.Images);
        Assert.Equal(["blue", "green", "red"], package.Manifest.Labels);
        Assert.Equal("onnx-resnet18", package.Manifest.Backbone);
        Assert.True(File.Exists(Path.Combine(output, TrainCommand.ReportHtml)));

        var classify = await new Cli().RunAsync("classify", "--model", output, "--json", Path.Combine(data, "red", "5.png"), Path.Combine(data, "blue", "0.png"));
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        var labels = classify.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => JsonDocument.Parse(line).RootElement.GetProperty("top")[0].GetProperty("label").GetString())
            .ToList();
        Assert.Equal(["red", "blue"], labels);
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
        Assert.Equal(4, html.Split("<polyline").Length - 1); // train and validation in each of the two charts
    }

    public void Dispose() => temp.Dispose();

    /// <summary>Stands in for the training engine: returns a fixed-bias model with a hostile label, after reporting three epochs.</summary>
    private sealed class FakeRunner : ITrainingRunner
    {
        public TrainingRunRequest? Request { get; private set; }

        public Action<TrainingRunRequest>? OnTrain { get; set; }

        public Task<TrainingRunResult> TrainAsync(TrainingRunRequest request, IProgress<TrainingRunProgress> progress, CancellationToken cancellationToken)
        {
            Request = request;
            OnTrain?.Invoke(request);
            cancellationToken.ThrowIfCancellationRequested();
            var history = new List<EpochMetrics>();
            for (var epoch = 1; epoch <= request.Epochs; epoch++)
            {
                var metrics = new EpochMetrics(epoch, 1.0 / epoch, 0.5, 1.2 / epoch, 0.5, 1e-3, 1);
                history.Add(metrics);
                progress.Report(new TrainingRunProgress("train", epoch, request.Epochs, 2, 2) { EpochDone = metrics });
            }
            string[] labels = ["cats", HostileLabel];
            var (model, manifest) = TestModels.Create(1, labels);
            return Task.FromResult(new TrainingRunResult
            {
                Model = model,
                Manifest = manifest,
                History = history,
                ConfidenceThreshold = 0.25,
                Data = new DataCounts(new Dictionary<string, int> { ["cats"] = 2, [HostileLabel] = 2 }, new Dictionary<string, int> { ["cats"] = 1, [HostileLabel] = 1 }),
                ValidationPredictions =
                [
                    new ValidationPrediction(Path.Combine(request.DataFolder, "cats", "x.png"), labels[0], labels[1], 0.9, [0.1f, 0.9f]),
                    new ValidationPrediction("y.png", labels[1], labels[1], 0.9, [0.1f, 0.9f]),
                ],
                Skipped = [new ModelCore.Training.SkippedImage("bad<file>.png", ImageErrorCode.Corrupt, "could not be read")],
                BestEpoch = request.Epochs,
            });
        }
    }
}
