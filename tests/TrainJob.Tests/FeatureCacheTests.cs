using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using Azure.Storage.Queues;
using ServerlessClassifier.ModelCore.Jobs;
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
    private static readonly string[] Settings = ["--mode", "head", "--seed", "7", "--device", "cpu", "--feature-cache", "--verbose"];
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
    public async Task Train_WithFeatureCacheDistributed_HasTheShardsComputeTheFeatures_DuplicateDeliveriesAddNothing()
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
        await training.UploadBlobAsync("red/broken.png", BinaryData.FromString("not an image"));
        var queue = new QueueClient(TestStorage.ConnectionString, cli.ShardQueue, new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 });
        await queue.CreateIfNotExistsAsync();
        var jobs = new JobStore(service.GetBlobContainerClient(cli.JobsContainer));
        using var worker = new FeatureShardWorker(jobs, service, new FeatureStore(service.GetBlobContainerClient(cli.FeaturesContainer)), parallelism: 4);
        var runner = new ShardRunner(jobs, maxAttempts: 3, parallelism: 4);
        using var stop = new CancellationTokenSource();
        var duplicated = 0;
        // Two consumers as the Functions host runs ClassifyShard (its features branch): receive, run, delete on success;
        // each first message is also sent again, so two shards are delivered twice.
        var consumers = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var message = (await queue.ReceiveMessageAsync(TimeSpan.FromSeconds(30), stop.Token)).Value;
                if (message is null)
                {
                    await Task.Delay(100, stop.Token);
                    continue;
                }
                if (Interlocked.Increment(ref duplicated) <= 2)
                {
                    await queue.SendMessageAsync(message.MessageText, stop.Token);
                }
                await runner.RunAsync(ShardMessage.Parse(message.MessageText), message.DequeueCount, worker.RunAsync, stop.Token);
                await queue.DeleteMessageAsync(message.MessageId, message.PopReceipt, stop.Token);
            }
        })).ToList();

        // A consumer that died would leave the run waiting: the test gives up after a few minutes.
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(4));
        var run = await cli.RunAsync(timeout.Token, ["train", "--data", cli.TrainingContainer, "--output", temp.Combine("fanned"), .. Settings, "--distributed", "--shard-size", "4"]);
        var again = await cli.RunAsync(timeout.Token, ["train", "--data", cli.TrainingContainer, "--output", temp.Combine("again"), .. Settings, "--distributed"]);
        await stop.CancelAsync();
        await Task.WhenAll(consumers.Select(c => c.ContinueWith(_ => { }, TaskScheduler.Default)));
        // Each consumer ends by the stop: cancelled inside a call, or (when the stop comes between two messages) by its loop's test.
        Assert.All(consumers, c => Assert.True(c.IsCanceled || c.IsCompletedSuccessfully || c.Exception?.InnerException is OperationCanceledException, c.Exception?.ToString()));

        Assert.True(run.ExitCode == ExitCodes.Ok, run.All);
        var id = Regex.Match(run.Out, @"Job (\S+): features of 13 images in 4 shards of at most 4 on the queue").Groups[1].Value;
        Assert.False(string.IsNullOrEmpty(id), run.Out);
        Assert.Contains($"Job {id}: 12 images' features computed by the Functions app, 1 rejected, 0 changed since the listing, 0 shard(s) parked", run.Out, StringComparison.Ordinal);
        // The broken image is tried again by the run (and skipped); every other image is read from the shards' files, checked against TorchSharp.
        var readLine = Regex.Match(run.Out, @"12 of 13 images read from (\d) file\(s\), 1 computed, 0 written; 13 fanned out\.");
        Assert.True(readLine.Success, run.Out);
        var features = service.GetBlobContainerClient(cli.FeaturesContainer);
        var key = KeyIn(run.Out);
        Assert.Equal(int.Parse(readLine.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), await features.GetBlobsAsync(BlobTraits.None, BlobStates.None, key + "/", CancellationToken.None).CountAsync()); // a file per shard with features
        var stored = await ReadStoredAsync(features, key);
        Assert.Equal(files.Select(f => $"{cli.TrainingContainer}/{f}").Order(StringComparer.Ordinal), stored.Select(i => i.Name).Order(StringComparer.Ordinal)); // once each
        var status = await cli.RunAsync("jobs", "status", id);
        Assert.Contains("Shards: 4 of 4 done, 0 parked, 0 waiting or running.", status.Out, StringComparison.Ordinal);
        Assert.Contains("Items: 12 images' features stored, 1 rejected, 0 changed since the listing; 13 of 13 in finished shards.", status.Out, StringComparison.Ordinal);
        Assert.True(again.ExitCode == ExitCodes.Ok, again.All);
        Assert.Contains($"12 of 13 images read from {readLine.Groups[1].Value} file(s), 1 computed, 0 written; 1 fanned out.", again.Out, StringComparison.Ordinal); // only the broken image is still missing
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
        Assert.Contains("--feature-cache does not apply here: finetune and full train the backbone", finetune.Err, StringComparison.Ordinal);
        Assert.Equal(ExitCodes.Usage, flip.ExitCode);
        Assert.Contains("mirror-image features or the feature cache, not both", flip.Err, StringComparison.Ordinal);
        var distributed = await cli.RunAsync("train", "--data", "training", "--output", temp.Combine("d"), "--distributed");
        Assert.Equal(ExitCodes.Usage, distributed.ExitCode);
        Assert.Contains("--distributed fans out the feature extraction of --feature-cache", distributed.Err, StringComparison.Ordinal);
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
