using System.Text.Json;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Commands.Review;
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

    /// <summary>A one-epoch multi-label fine-tune of the last stage.</summary>
    public static string[] Finetune { get; } = ["--mode", "finetune", "--epochs", "1", "--seed", "7", "--device", "cpu"];

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
        // The int8 check per label (auto): each label's decisions at its threshold on the out-of-fold images, kept only when no label drops beyond the limit.
        Assert.Matches(@"Precision: (int8|fp32; the int8 graph was not kept) \(int8 check per label on 24 out-of-fold images, decisions at each label's threshold: blue [\d.]+ % int8 vs [\d.]+ % fp32, agreement [\d.]+ %; red ", set.Train.Out);
        var int8 = manifest.Quantization!;
        Assert.Equal(["blue", "red"], int8.PerLabel!.Select(l => l.Label));
        Assert.Equal(manifest.LabelThresholds, int8.PerLabel!.Select(l => l.Threshold));
        Assert.Equal(int8.PerLabel!.All(l => l.AccuracyDropPoints <= int8.MaxAccuracyDropPoints + 1e-9), int8.Accepted);
        Assert.Equal(int8.Accepted ? ModelCore.Checkpoints.ModelPrecision.Int8 : ModelCore.Checkpoints.ModelPrecision.Fp32, manifest.Precision);

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
    public async Task Train_EachLabelsServedThreshold_IsItsBestOutOfFoldF1Threshold_ShrunkTowardHalfByItsPositives()
    {
        Assert.True(set.Train.ExitCode == ExitCodes.Ok, set.Train.All);
        var manifest = (await ModelPackage.LoadAsync(set.Model)).Manifest;
        for (var l = 0; l < 2; l++)
        {
            // The probe's line names the best out-of-fold F1 threshold t and the label's p positives; the manifest's threshold is (p t + 10 x 0.5) / (p + 10).
            var line = System.Text.RegularExpressions.Regex.Match(set.Train.Out,
                $@"multi-label probe {l + 1} of 2, ""{manifest.Labels[l]}"" \(12 of 24 images\).*threshold ([\d.]+) \(best F1 \(([\d.]+)\) shrunk toward 0\.5 by its 12 positives against 0\.5's 10\)");
            Assert.True(line.Success, set.Train.Out);
            var best = double.Parse(line.Groups[2].Value, System.Globalization.CultureInfo.InvariantCulture);
            var shrunk = Math.Floor((((12 * best) + (10 * 0.5)) / 22) * 1000) / 1000;
            Assert.True(Math.Abs(best - 0.5) > 0.01, set.Train.Out); // far enough from 0.5 that the shrinkage shows
            Assert.Equal(shrunk, manifest.LabelThresholds![l], 9);
            Assert.Equal(shrunk, double.Parse(line.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 3);
        }
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
    public async Task Train_MultiLabelRowsWithoutMultiLabel_InACell_StayOneClass_AndFullIsRefused()
    {
        var cli = new Cli();
        // Without --multilabel a cell is one label, exactly as before: "blue;red" is a class of its own.
        var asClasses = await cli.RunAsync(["train", "--data", Path.Combine(set.Data, TrainRun.MultiLabelCsv), "--output", set.Combine("classes"), .. MultiLabelSet.Settings]);
        var full = await cli.RunAsync("train", "--data", set.Data, "--multilabel", "--mode", "full", "--output", set.Combine("full"));
        var noCsv = await cli.RunAsync("train", "--data", Path.Combine(set.Data, "red"), "--multilabel", "--output", set.Combine("nocsv"));
        var disagree = await cli.RunAsync(["train", "--data", set.Data, "--multilabel", "--class-thresholds", "precision=0.9", "--target-precision", "0.8", "--output", set.Combine("disagree"), .. MultiLabelSet.Settings]);

        Assert.True(asClasses.ExitCode == ExitCodes.Ok, asClasses.All);
        var manifest = (await ModelPackage.LoadAsync(set.Combine("classes"))).Manifest;
        Assert.Equal(ModelKind.MultiClass, manifest.Kind);
        Assert.Equal(["blue", "blue;red", "red"], manifest.Labels); // the unlabelled rows are skipped, as before
        Assert.Equal(ExitCodes.Usage, full.ExitCode);
        Assert.Contains("training every layer of a multi-label model (--mode full) with a binary loss is not built yet", full.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(set.Combine("full")));
        Assert.Equal(ExitCodes.Usage, noCsv.ExitCode);
        Assert.Contains("labels.csv", noCsv.Err, StringComparison.Ordinal);
        Assert.NotEqual(ExitCodes.Ok, disagree.ExitCode);
        Assert.Contains("--class-thresholds precision=0.9 and --target-precision 0.8 ask for different thresholds", disagree.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_Finetune_WithABinaryLoss_StartsFromTheProbes_ServesSigmoidsAtEachLabelsThreshold_AndResumes()
    {
        var output = set.Combine("finetune");
        var cli = new Cli();

        var run = await cli.RunAsync(["train", "--data", set.Data, "--multilabel", "--output", output, .. MultiLabelSet.Finetune]);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        // Epoch 0 is the calibrated per-label probes on the training images' pretrained features; every epoch is judged against it
        // on each validation image's summed per-label binary cross-entropy.
        Assert.Contains("Head initialised from the calibrated per-label probes on the ", run.Out, StringComparison.Ordinal);
        Assert.Matches(@"Start \(epoch 0\): val loss [\d.]+ \(summed per-label binary cross-entropy\) exact match [\d. ]+%; a later epoch is kept only if its validation loss is below the start's by more than 2 standard errors", run.Out);
        Assert.Contains("Epoch 1 against the start: validation loss ", run.Out, StringComparison.Ordinal);
        Assert.Matches(@"Per-label probes refitted on the kept backbone \(epoch [01]\) over all 24 images", run.Out);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Equal(ModelKind.MultiLabel, manifest.Kind);
        Assert.True(manifest.Head.MultiLabel);
        Assert.Equal(["blue", "red"], manifest.Labels);
        Assert.Equal(("finetune", 1), (manifest.Training!.Mode, manifest.Training.Epochs));
        Assert.Equal(["layer4"], manifest.Training.UnfreezeStages!);
        Assert.True(manifest.Metrics!.MeanAveragePrecision > 0.9, run.Out);
        Assert.NotNull(manifest.Metrics.MicroF1);
        Assert.NotNull(manifest.Metrics.ExactMatch);
        // Each threshold is the one the refit on the kept backbone chose (its probes see all 24 images; the start's saw the training split only).
        for (var l = 0; l < 2; l++)
        {
            var refit = System.Text.RegularExpressions.Regex.Match(run.Out, $@"multi-label probe {l + 1} of 2, ""{manifest.Labels[l]}"" \(\d+ of 24 images\).*threshold ([\d.]+) \(");
            Assert.True(refit.Success, run.Out);
            Assert.Equal(double.Parse(refit.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), manifest.LabelThresholds![l]);
        }
        Assert.Matches(@"Precision: (int8|fp32; the int8 graph was not kept) \(int8 check per label on \d+ out-of-fold images, decisions at each label's threshold: blue ", run.Out);
        Assert.Equal(manifest.LabelThresholds, manifest.Quantization!.PerLabel!.Select(l => l.Threshold));
        using (var report = JsonDocument.Parse(await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportJson))))
        {
            Assert.Equal(manifest.LabelThresholds, report.RootElement.GetProperty("multiLabel").GetProperty("perLabel").EnumerateArray().Select(l => l.GetProperty("threshold").GetDouble()));
        }

        // Served: a sigmoid per label (an image with both halves gets both near 1), each label at its own threshold; none for a grey image.
        var classify = await cli.RunAsync("classify", "--model", output, "--json", Path.Combine(set.Data, "both", "0.png"), Path.Combine(set.Data, "none", "0.png"));
        Assert.True(classify.ExitCode == ExitCodes.Ok, classify.All);
        var answers = classify.Out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => JsonDocument.Parse(line).RootElement).ToList();
        var both = answers[0].GetProperty("labels").EnumerateArray().ToList();
        Assert.Equal(["blue", "red"], both.Select(l => l.GetProperty("label").GetString()).Order(StringComparer.Ordinal));
        Assert.Equal(manifest.LabelThresholds, both.OrderBy(l => l.GetProperty("label").GetString(), StringComparer.Ordinal).Select(l => l.GetProperty("threshold").GetDouble()));
        Assert.True(answers[0].GetProperty("top").EnumerateArray().Sum(t => t.GetProperty("probability").GetDouble()) > 1.5, classify.Out);
        Assert.Empty(answers[1].GetProperty("labels").EnumerateArray());
        Assert.Equal("unknown", answers[1].GetProperty("label").GetString());

        // Resumed after its completed epoch: no epoch again, no new start, the same model.
        var resumed = await cli.RunAsync("train", "--output", output, "--resume", "--device", "cpu");

        Assert.True(resumed.ExitCode == ExitCodes.Ok, resumed.All);
        Assert.Contains("Resumed from", resumed.Out, StringComparison.Ordinal);
        Assert.DoesNotContain("Head initialised", resumed.Out, StringComparison.Ordinal);
        var again = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.Equal(manifest.LabelThresholds, again.LabelThresholds);
        Assert.Equal(ManifestTrainingTests.Hashes(manifest), ManifestTrainingTests.Hashes(again));
    }

    [Fact]
    public async Task Train_Finetune_FromARandomHead_KeepsAnEpoch_AndChoosesEachThresholdOnTheValidationImagesOnly()
    {
        var plan = set.Combine("random-start.json");
        await File.WriteAllTextAsync(plan, """{ "mode": "finetune", "epochs": 2, "start": "random", "precision": { "precision": "fp32" } }""");
        var output = set.Combine("finetune-random");

        var run = await new Cli().RunAsync("train", "--data", set.Data, "--multilabel", "--plan", plan, "--seed", "7", "--device", "cpu", "--output", output);

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.DoesNotContain("Head initialised", run.Out, StringComparison.Ordinal);
        var manifest = (await ModelPackage.LoadAsync(output)).Manifest;
        Assert.InRange(manifest.Training!.BestEpoch!.Value, 1, 2); // a random start needs no margin: a lower epoch replaces it
        // The backbone trained on the training split: the probes' L2 strengths, temperatures and thresholds, and every figure,
        // come from the validation images' out-of-fold probabilities.
        var validation = System.Text.RegularExpressions.Regex.Match(run.Out, @"chosen on the out-of-fold probabilities of the (\d+) validation images \(the backbone never trained on them\)");
        Assert.True(validation.Success, run.Out);
        var count = int.Parse(validation.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(count, 2, 12);
        Assert.Contains($"Multi-label, {count} images: micro F1", run.Out, StringComparison.Ordinal);
        // The console and the report say what those figures were measured on: the validation images, not every image out-of-fold.
        Assert.Matches($@"Multi-label, {count} images: micro F1 .* \(on the {count} validation images, which the kept backbone never trained on; each scored by probes that never saw it\)", run.Out);
        Assert.DoesNotContain("out-of-fold: every image scored", run.Out, StringComparison.Ordinal);
        var html = await File.ReadAllTextAsync(Path.Combine(output, TrainCommand.ReportHtml));
        Assert.Contains($"Figures are on the {count} validation images, which the kept backbone never trained on", html, StringComparison.Ordinal);
        Assert.DoesNotContain("Figures are out-of-fold", html, StringComparison.Ordinal);
        Assert.Equal(count, manifest.Metrics!.Samples);
        Assert.Equal(2, manifest.LabelThresholds!.Count);
        // Per label: its images in the training split, and in the validation split (the figures' images); 12 in all.
        Assert.All(manifest.Labels, l => Assert.Equal(12, manifest.Training.TrainCounts![l] + manifest.Training.ValidationCounts![l]));
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

    [Fact]
    public async Task Review_MultiLabelUploads_ExportToLabelsCsv_ImportWithSeveralLabelsOrNone_AndTrainReadsTheApprovedDataBack()
    {
        var cli = new Cli();
        var service = TestStorage.CreateServiceClient();
        var images = service.GetBlobContainerClient(cli.ImagesContainer);
        await images.CreateAsync();
        var queue = new ReviewQueue(service.GetBlobContainerClient(cli.ReviewContainer), new ReviewSettings { Container = cli.ReviewContainer });
        // Three images of each group, listed by the default (multi-label) model, which gave them no label; and a named multi-class model's upload beside them.
        var truth = new Dictionary<string, string[]>(StringComparer.Ordinal);
        foreach (var (file, labels) in set.Files.Where(f => int.Parse(Path.GetFileNameWithoutExtension(f.File), System.Globalization.CultureInfo.InvariantCulture) < 3))
        {
            var name = $"uploads/{file.Replace('/', '_')}";
            truth[ReviewLabeling.FileNameFor(name)] = labels;
            await QueueAsync(images, queue, name, Path.Combine(set.Data, file), labels: []);
        }
        await QueueAsync(images, queue, "cats/c.png", Path.Combine(set.Data, "red", "5.png"), labels: null);

        var export = set.Combine("review-export");
        var exported = await cli.RunAsync("review", "export", "--to", export);

        Assert.True(exported.ExitCode == ExitCodes.Ok, exported.All);
        Assert.Contains("Exported 13 queued images", exported.Out, StringComparison.Ordinal);
        Assert.Contains("12 uploads of a multi-label model are in _multilabel/ and listed in labels.csv", exported.Out, StringComparison.Ordinal);
        Assert.Equal(["image,labels", .. truth.Keys.Order(StringComparer.Ordinal).Select(f => $"_multilabel/{f},")],
            (await File.ReadAllLinesAsync(Path.Combine(export, TrainingImages.MultiLabelCsv))).Take(1).Concat((await File.ReadAllLinesAsync(Path.Combine(export, TrainingImages.MultiLabelCsv))).Skip(1).Order(StringComparer.Ordinal)));
        Assert.Equal(truth.Keys.Order(StringComparer.Ordinal), Directory.GetFiles(Path.Combine(export, ReviewCommands.MultiLabelFolder)).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.True(File.Exists(Path.Combine(export, "cats", "cats_c.png")));

        // The reviewer's corrections: every labels cell (several labels in one cell; none left empty), one image thrown away,
        // and one moved into a label folder by mistake (a multi-label upload is labelled in labels.csv: skipped, stays queued).
        await File.WriteAllLinesAsync(Path.Combine(export, TrainingImages.MultiLabelCsv),
            ["image,labels", .. truth.Select(t => $"{ReviewCommands.MultiLabelFolder}/{t.Key},\"{string.Join(';', t.Value)}\"")]);
        File.Move(Path.Combine(export, ReviewCommands.MultiLabelFolder, "uploads_none_2.png"), Path.Combine(export, ReviewCommands.DiscardFolder, "uploads_none_2.png"));
        Directory.CreateDirectory(Path.Combine(export, "red"));
        File.Move(Path.Combine(export, ReviewCommands.MultiLabelFolder, "uploads_red_2.png"), Path.Combine(export, "red", "uploads_red_2.png"));

        var imported = await cli.RunAsync("review", "import", export, "--reviewer", "Rita", "--approve");

        Assert.True(imported.ExitCode == ExitCodes.Ok, imported.All);
        Assert.Contains("Staged 11 labels by Rita ((no label) 2, blue 3, blue;red 3, cats 1, red 2); 1 discarded", imported.Out, StringComparison.Ordinal);
        Assert.Contains("skipped red/uploads_red_2.png: uploads/red_2.png is a multi-label model's upload, labelled in labels.csv", imported.Err, StringComparison.Ordinal);
        Assert.Contains("Approved by Rita: added 11 images", imported.Out, StringComparison.Ordinal);
        Assert.Equal(["uploads/red_2.png"], await queue.ListAsync().Select(q => q.Item.Image).ToListAsync());
        var records = await new ReviewLabels(service.GetBlobContainerClient(cli.ReviewContainer)).ListRecordsAsync().ToDictionaryAsync(r => r.Image);
        Assert.Equal(LabelDecisions.Approved, records["uploads/both_0.png"].Decision);
        Assert.Equal(["blue", "red"], records["uploads/both_0.png"].Labels);
        Assert.Equal([], records["uploads/both_0.png"].SuggestedLabels);
        Assert.Equal([], records["uploads/none_0.png"].Labels!);
        Assert.Equal(("cats", null), (records["cats/c.png"].Label, records["cats/c.png"].Labels));
        Assert.Equal(LabelDecisions.Discarded, records["uploads/none_2.png"].Decision);

        // The approved images lie beside labels.csv in the training container, which train --multilabel reads from storage.
        var training = service.GetBlobContainerClient(cli.TrainingContainer);
        var csv = (await training.GetBlobClient(TrainingImages.MultiLabelCsv).DownloadContentAsync()).Value.Content.ToString();
        Assert.Contains("\nuploads_both_0.png,blue;red\n", csv, StringComparison.Ordinal);
        Assert.Contains("\nuploads_none_0.png,\n", csv, StringComparison.Ordinal);
        var trained = await cli.RunAsync(["train", "--data", cli.TrainingContainer, "--multilabel", "--output", set.Combine("reviewed"), .. MultiLabelSet.Settings]);

        Assert.True(trained.ExitCode == ExitCodes.Ok, trained.All);
        Assert.Contains($"Manifest {cli.TrainingContainer}/labels.csv: ", trained.Out, StringComparison.Ordinal);
        var manifest = (await ModelPackage.LoadAsync(set.Combine("reviewed"))).Manifest;
        Assert.Equal(ModelKind.MultiLabel, manifest.Kind);
        Assert.Equal(["blue", "red"], manifest.Labels);
        Assert.Equal((6, 5), (manifest.Training!.TrainCounts!["blue"], manifest.Training.TrainCounts["red"]));
        Assert.Contains("2 of the 10 images carry none of them (negatives)", trained.Out + await File.ReadAllTextAsync(Path.Combine(set.Combine("reviewed"), TrainCommand.ReportJson)), StringComparison.Ordinal);
        var noCsv = await cli.RunAsync(["train", "--data", cli.ImagesContainer, "--multilabel", "--output", set.Combine("no-csv"), .. MultiLabelSet.Settings]);
        Assert.Equal(ExitCodes.Usage, noCsv.ExitCode);
        Assert.Contains("has none", noCsv.Err, StringComparison.Ordinal);
    }

    /// <summary>Uploads a file and lists it for review as a model's unsure prediction: a multi-label one with <paramref name="labels"/>, or (null) a named multi-class model's.</summary>
    private static async Task QueueAsync(BlobContainerClient images, ReviewQueue queue, string name, string file, string[]? labels)
    {
        await images.UploadBlobAsync(name, BinaryData.FromBytes(await File.ReadAllBytesAsync(file)));
        var version = PredictionBlobs.VersionOf((await images.GetBlobClient(name).GetPropertiesAsync()).Value.ETag);
        Assert.Equal(ReviewOutcome.Queued, await queue.OfferAsync(new PredictionDocument
        {
            Status = PredictionStatus.Ok,
            Image = name,
            ImageVersion = version,
            ModelVersion = "v1",
            Model = labels is null ? "cats" : null,
            Label = "unknown",
            Confidence = 0.4,
            IsUnknown = true,
            Threshold = 0.5,
            UnknownReason = UnknownReasons.LowConfidence,
            Top = labels is null ? [new LabelProbability("cats", 0.4), new LabelProbability("dogs", 0.35)] : [new LabelProbability("red", 0.4), new LabelProbability("blue", 0.3)],
            Labels = labels?.Select(l => new PredictedLabel(l, 0.9, 0.5)).ToList(),
            // A multi-label prediction is listed when a label is near its threshold (here one 0.05 away).
            ThresholdMargin = labels is null ? null : 0.05,
            Source = PredictionSource.Backfill,
        }));
    }

    private static string Write(string path, IEnumerable<string> rows)
    {
        File.WriteAllLines(path, rows);
        return path;
    }
}
