using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// A tiny multi-label set: grey 32 px images where the label <c>red</c> paints the left half red and <c>blue</c> the right
/// half blue, so an image carries 0, 1 or 2 labels. Written once; its <c>labels.csv</c> (the folder layout) trained once.
/// </summary>
public sealed class MultiLabelSet : IDisposable
{
    public static readonly (string Folder, string[] Labels)[] Groups = [("none", []), ("red", ["red"]), ("blue", ["blue"]), ("both", ["blue", "red"])];

    public const int PerGroup = 6;

    private readonly TempFolder temp = new();

    public MultiLabelSet()
    {
        Data = temp.Combine("data");
        var random = new Random(5);
        foreach (var (folder, labels) in Groups)
        {
            Directory.CreateDirectory(Path.Combine(Data, folder));
            for (var i = 0; i < PerGroup; i++)
            {
                using var image = new Image<Rgb24>(32, 32);
                for (var y = 0; y < 32; y++)
                {
                    for (var x = 0; x < 32; x++)
                    {
                        var noise = random.Next(-30, 31);
                        var (r, g, b) = x < 16 && labels.Contains("red") ? (220, 40, 40) : x >= 16 && labels.Contains("blue") ? (40, 40, 220) : (128, 128, 128);
                        image[x, y] = new((byte)Math.Clamp(r + noise, 0, 255), (byte)Math.Clamp(g + noise, 0, 255), (byte)Math.Clamp(b + noise, 0, 255));
                    }
                }
                var file = $"{folder}/{i}.png";
                image.SaveAsPng(Path.Combine(Data, file));
                Files.Add((file, labels));
            }
        }
        // The folder layout: the images with a labels.csv beside them, several labels in one cell separated by ';'.
        File.WriteAllLines(Path.Combine(Data, TrainRun.MultiLabelCsv), ["image,labels", .. Files.Select(f => $"{f.File},\"{string.Join(';', f.Labels)}\"")]);
        Model = temp.Combine("model");
        var run = new Cli().RunAsync(["train", "--data", Data, "--multilabel", "--output", Model, .. Settings]).GetAwaiter().GetResult();
        Train = run;
    }

    public static string[] Settings { get; } = ["--mode", "head", "--seed", "7", "--device", "cpu"];

    public string Data { get; }

    public List<(string File, string[] Labels)> Files { get; } = [];

    /// <summary>The model trained from the folder layout.</summary>
    public string Model { get; }

    public CliRun Train { get; }

    public string Combine(params string[] parts) => temp.Combine(parts);

    public void Dispose() => temp.Dispose();
}

/// <summary>
/// <c>train</c> of a multi-label model on the real engine from every manifest form (CSV with several labels in a cell, Azure ML
/// JSONL label arrays, Vertex AI multi-label CSV, Ground Truth multilabel metadata, the labels.csv folder layout): one model
/// whatever the form, sigmoid outputs, a threshold per label, the multi-label figures in the console and the reports.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class MultiLabelTrainingTests(MultiLabelSet set) : IClassFixture<MultiLabelSet>
{
    [Fact]
    public async Task Train_FolderLayout_WritesAMultiLabelModel_WithAThresholdPerLabel_AndItsFigures()
    {
        Assert.True(set.Train.ExitCode == ExitCodes.Ok, set.Train.All);
        var manifest = (await ModelPackage.LoadAsync(set.Model)).Manifest;

        Assert.Equal(ModelKind.MultiLabel, manifest.Kind);
        Assert.True(manifest.Head.MultiLabel);
        Assert.Equal(["blue", "red"], manifest.Labels);
        Assert.Equal(2, manifest.LabelThresholds!.Count);
        Assert.All(manifest.LabelThresholds, t => Assert.InRange(t, 0.0, 1.0));
        Assert.Equal(12, manifest.Training!.TrainCounts!["red"]); // images carrying it (red and both)
        Assert.True(manifest.Metrics!.MeanAveragePrecision > 0.9, set.Train.Out);
        Assert.True(manifest.Metrics.ExactMatch > 0.8, set.Train.Out);
        Assert.Contains("Multi-label model: 2 labels (blue, red)", set.Train.Out, StringComparison.Ordinal);
        Assert.Contains("6 of the 24 images carry none of them (negatives)", set.Train.Out + await File.ReadAllTextAsync(Path.Combine(set.Model, TrainCommand.ReportJson)), StringComparison.Ordinal);
        Assert.Matches(@"Multi-label, 24 images: micro F1 [\d. ]+%, macro F1 [\d. ]+% \(with every threshold at 0\.5: [\d. ]+%\), mAP [\d. ]+%, exact match", set.Train.Out);
        Assert.Matches(@"  red: threshold [\d.]+, precision", set.Train.Out);
        Assert.Contains("int8 is not built for multi-label models", set.Train.Out, StringComparison.Ordinal);

        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(set.Model, TrainCommand.ReportJson)));
        var multiLabel = report.RootElement.GetProperty("multiLabel");
        Assert.Equal(24, multiLabel.GetProperty("samples").GetInt32());
        Assert.Equal(["blue", "red"], multiLabel.GetProperty("perLabel").EnumerateArray().Select(l => l.GetProperty("label").GetString()));
        Assert.Equal(manifest.LabelThresholds, multiLabel.GetProperty("perLabel").EnumerateArray().Select(l => l.GetProperty("threshold").GetDouble()));
        var html = await File.ReadAllTextAsync(Path.Combine(set.Model, TrainCommand.ReportHtml));
        Assert.Contains("Verdict (multi-label)", html, StringComparison.Ordinal);
        Assert.Contains("Per label, at its threshold", html, StringComparison.Ordinal);
        Assert.Contains("Precision-recall curves", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_FromEachMultiLabelManifestForm_GivesTheFolderLayoutsModel()
    {
        var data = set.Data;
        var jsonl = Write(Path.Combine(data, "azureml.jsonl"), set.Files.Select(f => JsonSerializer.Serialize(new { image_url = f.File, label = f.Labels })));
        var vertex = Write(Path.Combine(data, "vertex.csv"), set.Files.Select(f => string.Join(',', ["UNASSIGNED", $"gs://b/{f.File}", .. f.Labels])));
        var classes = new[] { "blue", "red" };
        var groundTruth = Write(Path.Combine(data, "output.manifest"), set.Files.Select(f => JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["source-ref"] = $"s3://b/{f.File}",
            ["tags"] = f.Labels.Select(l => Array.IndexOf(classes, l)).ToArray(),
            ["tags-metadata"] = new Dictionary<string, object>
            {
                ["class-map"] = f.Labels.ToDictionary(l => Array.IndexOf(classes, l).ToString(System.Globalization.CultureInfo.InvariantCulture), l => l),
                ["type"] = "groundtruth/image-classification-multilabel",
            },
        })));
        var cli = new Cli();
        var folder = (await ModelPackage.LoadAsync(set.Model)).Manifest;

        foreach (var (name, manifest, extra) in new[]
        {
            ("jsonl", jsonl, Array.Empty<string>()),
            ("vertex", vertex, ["--rewrite-prefix", "gs://b/=./"]),
            ("groundtruth", groundTruth, ["--rewrite-prefix", "s3://b/=./"]),
        })
        {
            // Detected: each form has rows with several labels (or Ground Truth's multilabel metadata); no --multilabel.
            var run = await cli.RunAsync(["train", "--data", manifest, "--output", set.Combine(name), .. MultiLabelSet.Settings, .. extra]);
            Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
            Assert.Contains("Multi-label model: 2 labels", run.Out, StringComparison.Ordinal);
            var trained = (await ModelPackage.LoadAsync(set.Combine(name))).Manifest;
            Assert.Equal(folder.Labels, trained.Labels);
            Assert.Equal(folder.Training!.DataHash, trained.Training!.DataHash);
            Assert.Equal(folder.LabelThresholds, trained.LabelThresholds);
            Assert.Equal(ManifestTrainingTests.Hashes(folder), ManifestTrainingTests.Hashes(trained));
        }
    }

    [Fact]
    public async Task Train_MultiLabelRowsWithoutMultiLabel_InACell_StayOneClass_AndFinetuneIsRefused()
    {
        var cli = new Cli();
        // Without --multilabel a cell is one label, exactly as before: "blue;red" is a class of its own.
        var asClasses = await cli.RunAsync(["train", "--data", Path.Combine(set.Data, TrainRun.MultiLabelCsv), "--output", set.Combine("classes"), .. MultiLabelSet.Settings]);
        var finetune = await cli.RunAsync("train", "--data", set.Data, "--multilabel", "--mode", "finetune", "--output", set.Combine("finetune"));
        var noCsv = await cli.RunAsync("train", "--data", Path.Combine(set.Data, "red"), "--multilabel", "--output", set.Combine("nocsv"));
        var disagree = await cli.RunAsync(["train", "--data", set.Data, "--multilabel", "--class-thresholds", "precision=0.9", "--target-precision", "0.8", "--output", set.Combine("disagree"), .. MultiLabelSet.Settings]);

        Assert.True(asClasses.ExitCode == ExitCodes.Ok, asClasses.All);
        var manifest = (await ModelPackage.LoadAsync(set.Combine("classes"))).Manifest;
        Assert.Equal(ModelKind.MultiClass, manifest.Kind);
        Assert.Equal(["blue", "blue;red", "red"], manifest.Labels); // the unlabelled rows are skipped, as before
        Assert.Equal(ExitCodes.Usage, finetune.ExitCode);
        Assert.Contains("fine-tuning a multi-label model with a binary loss is not built yet", finetune.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, noCsv.ExitCode);
        Assert.Contains("labels.csv", noCsv.Err, StringComparison.Ordinal);
        Assert.NotEqual(ExitCodes.Ok, disagree.ExitCode);
        Assert.Contains("--class-thresholds precision=0.9 and --target-precision 0.8 ask for different thresholds", disagree.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_ClassThresholdsPrecision_GivesEachLabelTheThresholdOfThatPrecision_AsTargetPrecisionDoes()
    {
        // The multi-class option means the same per label: the lowest threshold whose out-of-fold precision reaches P.
        var run = await new Cli().RunAsync(["train", "--data", set.Data, "--multilabel", "--class-thresholds", "precision=0.95", "--output", set.Combine("p95"), .. MultiLabelSet.Settings]);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Matches(@"  red: threshold [\d.]+, precision", run.Out);
        Assert.Contains("precision at least 95", run.Out, StringComparison.Ordinal);
        var thresholds = (await ModelPackage.LoadAsync(set.Combine("p95"))).Manifest.LabelThresholds!;
        Assert.NotEqual((await ModelPackage.LoadAsync(set.Model)).Manifest.LabelThresholds, thresholds); // not the default rule's
    }

    [Fact]
    public async Task Evaluate_MultiLabelModel_MeasuresEachLabelAtItsThreshold_WithTheServingPipeline()
    {
        var json = set.Combine("evaluate.json");

        var run = await new Cli().RunAsync("evaluate", "--model", set.Model, "--data", set.Data, "--json", json);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Matches(@"Multi-label, 24 images: micro F1 [\d. ]+%, macro F1", run.Out);
        using var report = JsonDocument.Parse(await File.ReadAllTextAsync(json));
        var root = report.RootElement;
        Assert.Equal("multiLabel", root.GetProperty("kind").GetString());
        Assert.Equal(24, root.GetProperty("samples").GetInt32());
        var manifest = (await ModelPackage.LoadAsync(set.Model)).Manifest;
        Assert.Equal(manifest.LabelThresholds, root.GetProperty("perLabel").EnumerateArray().Select(l => l.GetProperty("threshold").GetDouble()));
        Assert.Equal([12, 12], root.GetProperty("perLabel").EnumerateArray().Select(l => l.GetProperty("support").GetInt32()));
        // In-sample now (the head saw these images), so at least as good as out-of-fold.
        Assert.True(root.GetProperty("meanAveragePrecision").GetDouble() >= manifest.Metrics!.MeanAveragePrecision!.Value - 1e-9, run.Out);
    }

    private static string Write(string path, IEnumerable<string> rows)
    {
        File.WriteAllLines(path, rows);
        return path;
    }
}
