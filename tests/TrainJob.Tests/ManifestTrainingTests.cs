using System.Security.Cryptography;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using ServerlessClassifier.TrainJob.Commands.Train;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// <c>train --data &lt;manifest&gt;</c> on the real engine: every manifest format, with local files and with
/// blobs in Azurite, gives exactly the model the equivalent folder layout gives (same labels, counts and
/// data hash, byte-identical weights and ONNX graph for the same seed); <c>evaluate --data &lt;manifest&gt;</c>
/// measures a manifest's TEST rows.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ManifestTrainingTests(ModelFolders models) : IClassFixture<ModelFolders>, IDisposable
{
    private static readonly string[] Settings = ["--mode", "head", "--seed", "7", "--device", "cpu"];
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Train_FromEachManifestFormat_LocalAndBlobs_GivesTheFolderLayoutsModel()
    {
        var cli = new Cli();
        var data = temp.Combine("data");
        var files = WriteImages(data, "", ["blue", "red"], perClass: 5);
        var container = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.TrainingContainer);
        await container.CreateAsync();
        foreach (var file in files)
        {
            await container.UploadBlobAsync(file, BinaryData.FromBytes(await File.ReadAllBytesAsync(Path.Combine(data, file))));
        }
        Directory.CreateDirectory(temp.Combine("manifests"));
        var csv = Write(Path.Combine(data, "labels.csv"), "image,label", files.Select(f => $"{f},{Label(f)}"));
        var jsonl = Write(temp.Combine("manifests", "azureml.jsonl"), null,
            files.Select(f => JsonSerializer.Serialize(new { image_url = container.GetBlobClient(f).Uri.ToString(), label = Label(f) })));
        var groundTruth = Write(temp.Combine("manifests", "output.manifest"), null,
            files.Select(f => $$$"""{"source-ref":"s3://my-bucket/{{{f}}}","shape":0,"shape-metadata":{"class-name":"{{{Label(f)}}}","type":"groundtruth/image-classification"}}"""));
        var vertex = Write(temp.Combine("manifests", "vertex.csv"), null, files.Select(f => $"UNASSIGNED,gs://my-bucket/{f},{Label(f)}"));

        var folder = await TrainAsync(cli, "folder", data);
        var fromCsv = await TrainAsync(cli, "csv", csv);
        var fromJsonl = await TrainAsync(cli, "jsonl", jsonl);
        var fromGroundTruth = await TrainAsync(cli, "groundtruth", groundTruth, "--rewrite-prefix", $"s3://my-bucket/={cli.TrainingContainer}/");
        var fromVertex = await TrainAsync(cli, "vertex", vertex, "--rewrite-prefix", "gs://my-bucket/=../data/");

        Assert.Contains("CSV (image,label), 10 rows, SHA-256 " + Sha256(csv), fromCsv.Run.Out, StringComparison.Ordinal);
        Assert.Contains("Azure ML AutoML JSONL", fromJsonl.Run.Out, StringComparison.Ordinal);
        Assert.Contains("SageMaker Ground Truth / Rekognition manifest", fromGroundTruth.Run.Out, StringComparison.Ordinal);
        Assert.Contains("Vertex AI import CSV", fromVertex.Run.Out, StringComparison.Ordinal);
        foreach (var (name, manifest) in new[] { ("csv", csv), ("jsonl", jsonl), ("groundtruth", groundTruth), ("vertex", vertex) })
        {
            using var report = JsonDocument.Parse(await File.ReadAllTextAsync(temp.Combine(name, TrainCommand.ReportJson)));
            Assert.Equal(Sha256(manifest), report.RootElement.GetProperty("settings").GetProperty("manifest SHA-256").GetString());
        }
        foreach (var trained in new[] { fromCsv, fromJsonl, fromGroundTruth, fromVertex })
        {
            Assert.Equal(folder.Manifest.Labels, trained.Manifest.Labels);
            Assert.Equal(folder.Manifest.Training!.DataHash, trained.Manifest.Training!.DataHash);
            Assert.Equal(folder.Manifest.Training.TrainCounts, trained.Manifest.Training.TrainCounts);
            Assert.Equal(folder.Manifest.Training.ValidationCounts, trained.Manifest.Training.ValidationCounts);
            Assert.Equal(Hashes(folder.Manifest), Hashes(trained.Manifest));
        }
    }

    [Fact]
    public async Task Train_FromVertexSplit_GivesTheTrainValFoldersModel_AndEvaluateMeasuresTheTestRows()
    {
        var cli = new Cli();
        var data = temp.Combine("split");
        var train = WriteImages(data, "train", ["blue", "red"], perClass: 4);
        var val = WriteImages(data, "val", ["blue", "red"], perClass: 2);
        var test = WriteImages(temp.Combine("held-out"), "", ["blue", "red"], perClass: 2);
        var vertex = Write(temp.Combine("vertex.csv"), null, [
            .. train.Select(f => $"TRAINING,gs://b/split/{f},{f.Split('/')[1]}"),
            .. val.Select(f => $"VALIDATION,gs://b/split/{f},{f.Split('/')[1]}"),
            .. test.Select(f => $"TEST,gs://b/held-out/{f},{Label(f)}"),
        ]);

        var folder = await TrainAsync(cli, "folder", data);
        var fromVertex = await TrainAsync(cli, "vertex", vertex, "--rewrite-prefix", "gs://b/split/=./split/", "--rewrite-prefix", "gs://b/held-out/=./held-out/");

        Assert.Contains("4 image(s) marked TEST", fromVertex.Run.Out + await File.ReadAllTextAsync(temp.Combine("vertex", TrainCommand.ReportJson)), StringComparison.Ordinal);
        Assert.Equal(Hashes(folder.Manifest), Hashes(fromVertex.Manifest));
        Assert.Equal(folder.Manifest.Training!.DataHash, fromVertex.Manifest.Training!.DataHash);

        var evaluate = await cli.RunAsync("evaluate", "--model", temp.Combine("vertex"), "--data", vertex, "--rewrite-prefix", "gs://b/split/=./split/", "--rewrite-prefix", "gs://b/held-out/=./held-out/", "--json", temp.Combine("eval.json"));

        Assert.True(evaluate.ExitCode == ExitCodes.Ok, evaluate.All);
        Assert.Contains("measuring the rows marked TEST", evaluate.Out, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(temp.Combine("eval.json")));
        Assert.Equal(test.Count, json.RootElement.GetProperty("samples").GetInt32()); // the 4 TEST rows, not all 16
        Assert.Equal([2, 2], json.RootElement.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Sum(c => c.GetInt32())));
    }

    [Fact]
    public async Task Evaluate_ManifestOfBlobNames_ReadsTheTrainingContainer()
    {
        var cli = new Cli();
        var files = WriteImages(temp.Combine("eval"), "", ["alpha", "beta", "gamma"], perClass: 2);
        var container = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.TrainingContainer);
        await container.CreateAsync();
        foreach (var file in files)
        {
            await container.UploadBlobAsync(file, BinaryData.FromBytes(await File.ReadAllBytesAsync(temp.Combine("eval", file))));
        }
        var manifest = Write(temp.Combine("names.csv"), null, [.. files.Select(f => $"{f},{Label(f)}"), "alpha/missing.png,alpha"]);

        var run = await cli.RunAsync("evaluate", "--model", models.AlwaysGamma, "--data", manifest, "--json", temp.Combine("eval.json"));

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        Assert.Contains("accuracy 33.33% (2/6)", run.Out, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(temp.Combine("eval.json")));
        var skipped = Assert.Single(json.RootElement.GetProperty("skipped").EnumerateArray());
        Assert.Equal("alpha/missing.png", skipped.GetProperty("file").GetString());
    }

    [Fact]
    public async Task RewritePrefix_WithoutAManifest_IsAUsageError_AndABadOneNamesTheForm()
    {
        var cli = new Cli();
        var data = temp.Combine("folder");
        WriteImages(data, "", ["blue", "red"], perClass: 2);
        var manifest = Write(temp.Combine("m.csv"), null, ["blue/0.png,blue"]);

        var folder = await cli.RunAsync("train", "--data", data, "--output", temp.Combine("o1"), "--rewrite-prefix", "gs://b/=training/");
        var malformed = await cli.RunAsync("evaluate", "--model", models.AlwaysGamma, "--data", manifest, "--rewrite-prefix", "gs://b/");

        Assert.Equal(ExitCodes.Usage, folder.ExitCode);
        Assert.Contains("--rewrite-prefix applies to a manifest file", folder.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, malformed.ExitCode);
        Assert.Contains("is not FROM=TO (e.g. gs://bucket/=training/)", malformed.Err, StringComparison.Ordinal);
    }

    [Fact]
    public void Plan_KeepsTheRewritePrefixes_SoResumeReadsTheManifestTheSameWay()
    {
        var plan = new ModelCore.Plans.HeadPlan { Data = "/data/vertex.csv", RewritePrefixes = ["gs://b/=training/", "s3://c/=training/s3/"] };

        var read = ModelCore.Plans.TrainingPlan.FromJson(plan.ToJson());

        Assert.Equal(plan.RewritePrefixes, read.RewritePrefixes);
        Assert.Equal(plan.Data, read.Data);
        Assert.Empty(ModelCore.Plans.PlanSettings.Differences(plan, read));
        Assert.Equal("manifest prefix rewrites", ModelCore.Plans.PlanSettings.Differences(plan, read with { RewritePrefixes = ["gs://b/=training/"] }).Single().Name);
    }

    public void Dispose() => temp.Dispose();

    private async Task<(CliRun Run, ModelManifest Manifest)> TrainAsync(Cli cli, string name, string data, params string[] extra)
    {
        var run = await cli.RunAsync(["train", "--data", data, "--output", temp.Combine(name), .. Settings, .. extra]);
        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        return (run, (await ModelPackage.LoadAsync(temp.Combine(name))).Manifest);
    }

    /// <summary>The weights and the ONNX graph, by content.</summary>
    internal static string[] Hashes(ModelManifest manifest) => [.. manifest.Files.Select(f => $"{f.Role}:{f.Sha256}").Order(StringComparer.Ordinal)];

    private static string Label(string file) => file.Split('/')[^2];

    private static string Sha256(string file) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(file)));

    private static string Write(string path, string? header, IEnumerable<string> rows)
    {
        File.WriteAllLines(path, header is null ? rows : [header, .. rows]);
        return path;
    }

    /// <summary>Noisy flat-colour 32 px PNGs, <c>[split/]label/i.png</c>; returns their paths relative to <paramref name="root"/>.</summary>
    internal static List<string> WriteImages(string root, string split, string[] labels, int perClass)
    {
        var random = new Random(split.Length + perClass);
        var files = new List<string>();
        for (var c = 0; c < labels.Length; c++)
        {
            var relative = string.IsNullOrEmpty(split) ? labels[c] : $"{split}/{labels[c]}";
            Directory.CreateDirectory(Path.Combine(root, relative));
            for (var i = 0; i < perClass; i++)
            {
                using var image = new Image<Rgb24>(32, 32);
                for (var y = 0; y < 32; y++)
                {
                    for (var x = 0; x < 32; x++)
                    {
                        var noise = random.Next(-40, 41);
                        image[x, y] = new((byte)Math.Clamp((c == 0 ? 30 : 220) + noise, 0, 255), (byte)Math.Clamp(40 + noise, 0, 255), (byte)Math.Clamp((c == 0 ? 220 : 30) + noise, 0, 255));
                    }
                }
                image.SaveAsPng(Path.Combine(root, relative, $"{i}.png"));
                files.Add($"{relative}/{i}.png");
            }
        }
        return files;
    }
}
