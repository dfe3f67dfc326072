using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// <c>train --feature-cache</c> on the real engine against Azurite: the first run computes and stores every image's
/// features; the next reads them all (no image computed) and trains exactly the same model; a changed and a new image
/// are the only ones computed; stored features that disagree with the backbone are refused; and the option is refused
/// where it cannot apply.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed partial class FeatureCacheTests : IDisposable
{
    private static readonly string[] Settings = ["--mode", "head", "--epochs", "3", "--seed", "7", "--device", "cpu", "--feature-cache", "--verbose"];
    private readonly TempFolder temp = new();

    [Fact]
    public async Task Train_WithFeatureCache_ReadsStoredFeatures_ComputesOnlyNewOrChangedImages_AndTrainsTheSameModel()
    {
        var cli = new Cli();
        var service = TestStorage.CreateServiceClient();
        var training = service.GetBlobContainerClient(cli.TrainingContainer);
        await training.CreateAsync();
        var data = temp.Combine("data");
        var files = ManifestTrainingTests.WriteImages(data, "", ["blue", "red"], perClass: 6);
        foreach (var file in files)
        {
            await training.UploadBlobAsync(file, BinaryData.FromBytes(await File.ReadAllBytesAsync(Path.Combine(data, file))));
        }
        var features = service.GetBlobContainerClient(cli.FeaturesContainer);

        var first = await TrainAsync(cli, "first");
        Assert.Contains("0 of 12 images read from 0 file(s), 12 computed, 12 written.", first.Run.Out, StringComparison.Ordinal);
        var key = KeyIn(first.Run.Out);
        var stored = await ReadStoredAsync(features, key);
        Assert.Equal(files.Select(f => $"{cli.TrainingContainer}/{f}").Order(StringComparer.Ordinal), stored.Select(i => i.Name).Order(StringComparer.Ordinal));
        foreach (var image in stored)
        {
            var properties = await training.GetBlobClient(image.Name[(cli.TrainingContainer.Length + 1)..]).GetPropertiesAsync();
            Assert.Equal(PredictionBlobs.VersionOf(properties.Value.ETag), image.Version);
        }

        var second = await TrainAsync(cli, "second");
        Assert.Contains("12 of 12 images read from 1 file(s), 0 computed, 0 written.", second.Run.Out, StringComparison.Ordinal);
        Assert.Equal(key, KeyIn(second.Run.Out));
        Assert.Equal(ManifestTrainingTests.Hashes(first.Manifest), ManifestTrainingTests.Hashes(second.Manifest)); // same weights and graph, byte for byte

        using (var image = Image.Load<Rgb24>(Path.Combine(data, "blue", "0.png")))
        {
            image.Mutate(x => x.Flip(FlipMode.Horizontal).Rotate(RotateMode.Rotate90));
            using var changed = new MemoryStream();
            image.SaveAsPng(changed);
            await training.GetBlobClient("blue/0.png").UploadAsync(BinaryData.FromBytes(changed.ToArray()), overwrite: true);
        }
        await training.UploadBlobAsync("red/extra.png", BinaryData.FromBytes(await File.ReadAllBytesAsync(Path.Combine(data, "red", "1.png"))));
        await training.UploadBlobAsync("blue/broken.png", BinaryData.FromString("not an image")); // no content check before the split: skipped when read
        var third = await TrainAsync(cli, "third");
        Assert.Contains("11 of 14 images read from 1 file(s), 3 computed, 2 written.", third.Run.Out, StringComparison.Ordinal);
        Assert.Equal(13, third.Manifest.Training!.TrainCounts!.Values.Sum()); // head mode's linear probe fits every image (cross-validated)
        Assert.Equal("blue/broken.png", Assert.Single(third.Manifest.Training.Skipped ?? []).Source);
        var fourth = await TrainAsync(cli, "fourth");
        Assert.Contains("13 of 14 images read from 2 file(s), 1 computed, 0 written.", fourth.Run.Out, StringComparison.Ordinal);
        Assert.Equal(ManifestTrainingTests.Hashes(third.Manifest), ManifestTrainingTests.Hashes(fourth.Manifest));

        // A file that sorts first and holds other features for the same images (stale, foreign or tampered) is caught by the check.
        var (current, width) = await ReadStoredWithWidthAsync(features, key);
        await new FeatureStore(features).WriteAsync(key, "0-forged", current, new float[current.Count * width], width);
        var forged = await cli.RunAsync(["train", "--data", cli.TrainingContainer, "--output", temp.Combine("forged"), .. Settings]);
        Assert.Equal(ExitCodes.Failure, forged.ExitCode);
        Assert.Contains($"The stored features of key {key} differ from what the backbone computes now", forged.Err, StringComparison.Ordinal);
        Assert.Contains($"delete the folder {key}/ of the '{cli.FeaturesContainer}' container", forged.Err, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_WithFeatureCache_IsRefusedWhereItCannotApply()
    {
        var cli = new Cli();
        var data = temp.Combine("local");
        ManifestTrainingTests.WriteImages(data, "", ["blue", "red"], perClass: 2);

        var local = await cli.RunAsync("train", "--data", data, "--output", temp.Combine("a"), "--feature-cache");
        var finetune = await cli.RunAsync("train", "--data", "training", "--output", temp.Combine("b"), "--feature-cache", "--mode", "finetune");
        var flip = await cli.RunAsync("train", "--data", "training", "--output", temp.Combine("c"), "--feature-cache", "--flip");

        Assert.Equal(ExitCodes.Usage, local.ExitCode);
        Assert.Contains("--feature-cache needs --data container[/prefix]", local.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, finetune.ExitCode);
        Assert.Contains("--feature-cache applies to --mode head only", finetune.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, flip.ExitCode);
        Assert.Contains("give --flip or --feature-cache, not both", flip.Err, StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();

    private async Task<(CliRun Run, ModelManifest Manifest)> TrainAsync(Cli cli, string name)
    {
        var run = await cli.RunAsync(["train", "--data", cli.TrainingContainer, "--output", temp.Combine(name), .. Settings]);
        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        return (run, (await ModelPackage.LoadAsync(temp.Combine(name))).Manifest);
    }

    private static string KeyIn(string output) => KeyPattern().Match(output) is { Success: true } match ? match.Groups[1].Value : throw new Xunit.Sdk.XunitException($"No feature key in:\n{output}");

    private static async Task<List<FeatureImage>> ReadStoredAsync(BlobContainerClient features, string key) => (await ReadStoredWithWidthAsync(features, key)).Images;

    /// <summary>The images of every feature file of the key (a listing and a download per file), and the features' width.</summary>
    private static async Task<(List<FeatureImage> Images, int Width)> ReadStoredWithWidthAsync(BlobContainerClient features, string key)
    {
        var images = new List<FeatureImage>();
        var width = 0;
        await foreach (var blob in features.GetBlobsAsync(BlobTraits.None, BlobStates.None, key + "/", CancellationToken.None))
        {
            var bytes = (await features.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToArray();
            width = (int)SafeTensorsFile.Read(bytes, FeatureStore.TensorName, blob.Name).Shape[1];
            images.AddRange(FeatureStore.Parse(bytes, blob.Name, width).Images);
        }
        return (images, width);
    }

    [GeneratedRegex("key ([0-9a-f]{64}):")]
    private static partial Regex KeyPattern();
}
