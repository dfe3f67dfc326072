using Azure.Storage.Blobs.Models;
using Azure.Storage.Queues;
using Azure.Storage.Queues.Models;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.Jobs;

/// <summary>
/// The fan-out over a real Azurite queue: the planner lists and enqueues shards, and several consumers, each
/// receiving messages as the Functions host does (visibility timeout, delete on success, redelivery on failure),
/// invoke the real <see cref="ClassifyShard"/> function. One consumer is killed in the middle of a shard and some
/// messages are delivered twice; every image must end with exactly one prediction of its current version.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed class ShardFanOutTests(ServingModelFixture model)
{
    /// <summary>The killed consumer's message comes back after this.</summary>
    private static readonly TimeSpan Visibility = TimeSpan.FromSeconds(3);

    [Fact]
    public async Task SeveralConsumers_DuplicatesAndAKilledConsumer_OnePredictionPerImage()
    {
        await using var host = await StartAsync(await model.SharedModelsAsync());
        const int goodImages = 1500, badImages = 20, orphans = 30, alreadyCurrent = 40;
        var names = new List<string>();
        await Parallel.ForEachAsync(Enumerable.Range(0, goodImages), new ParallelOptions { MaxDegreeOfParallelism = 16 }, async (i, _) =>
        {
            var label = ServingModelFixture.Labels[i % 3];
            var name = await host.UploadAsync($"set/{i:D5}-{label}.png", ServingModelFixture.Image(label, seed: i, width: 32, height: 32));
            lock (names)
            {
                names.Add(name);
            }
        });
        for (var i = 0; i < badImages; i++)
        {
            names.Add(await host.UploadAsync($"set/bad-{i:D3}.png", [1, 2, 3, (byte)i]));
        }
        await host.Predictions.CreateIfNotExistsAsync();
        for (var i = 0; i < orphans; i++) // named after the images, so the first shard (the one killed below) is images
        {
            await host.Predictions.GetBlobClient($"zz-gone/{i:D3}.png.json").UploadAsync(BinaryData.FromString("{}"));
        }
        var handler = host.Get<UploadedImageHandler>();
        foreach (var name in names.Order(StringComparer.Ordinal).Take(alreadyCurrent))
        {
            Assert.Equal(PredictionOutcome.Classified, await handler.HandleAsync(host.Images.GetBlobClient(name), name, PredictionSource.BlobTrigger, CancellationToken.None));
        }

        var (jobs, queue) = Infrastructure(host);
        var job = await new ShardPlanner(host.Images, host.Predictions, jobs, queue).StartAsync(shardSize: 50);
        Assert.True(job.ListingComplete);
        Assert.Equal(goodImages + badImages - alreadyCurrent + orphans, job.Items);
        Assert.Equal((int)Math.Ceiling(job.Items / 50.0), job.Shards);

        // Duplicate deliveries: every fifth shard is on the queue twice.
        for (var shard = 0; shard < job.Shards; shard += 5)
        {
            await queue.SendMessageAsync(new ShardMessage(job.Id, shard).ToJson());
        }

        // The killed consumer: takes one message, brings 10 of its images up to date, and dies (no delete, no result).
        var victim = (await queue.ReceiveMessageAsync(Visibility)).Value;
        var killedShard = ShardMessage.Parse(victim.MessageText);
        using var kill = new CancellationTokenSource();
        var handled = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => host.Get<ShardRunner>().RunAsync(killedShard, victim.DequeueCount, async (item, token) =>
        {
            var outcome = await handler.HandleAsync(host.Images.GetBlobClient(item.Name), item.Name, PredictionSource.Shard, token);
            if (Interlocked.Increment(ref handled) == 10)
            {
                await kill.CancelAsync();
            }
            return outcome;
        }, kill.Token));
        Assert.False(await jobs.IsDoneAsync(killedShard));
        Assert.InRange(handled, 10, 10 + host.Get<ShardRunner>().Parallelism);

        var function = host.Function<ClassifyShard>();
        var consumers = Enumerable.Range(0, 3).Select(_ => ConsumeAsync(queue, function, jobs, job.Id, TimeSpan.FromMinutes(4))).ToArray();
        var deliveries = (await Task.WhenAll(consumers)).Sum();
        Assert.True(deliveries >= job.Shards + (job.Shards + 4) / 5, $"{deliveries} deliveries for {job.Shards} shards and their duplicates");

        var status = (await jobs.GetStatusAsync(job.Id))!;
        Assert.True(status.Finished);
        Assert.Equal(job.Shards, status.ShardsDone);
        Assert.Empty(status.Parked);
        Assert.Equal(job.Items, status.Totals.Items);
        // A shard's result is its first finished delivery's: when two deliveries race, the loser's writes are the
        // winner's "current" (and its removals "changed"), so only the sums are fixed.
        Assert.Equal(goodImages + badImages - alreadyCurrent, status.Totals.Classified + status.Totals.Rejected + status.Totals.Current);
        Assert.Equal(orphans, status.Totals.Removed + status.Totals.Changed);
        Assert.True(status.Totals.Current >= 10, $"the killed consumer's 10 images are current on redelivery: {status.Totals.Current}");
        foreach (var bad in names.Where(n => n.Contains("/bad-", StringComparison.Ordinal)))
        {
            var document = PredictionDocument.Parse((await host.Predictions.GetBlobClient(PredictionDocument.BlobNameFor(bad)).DownloadContentAsync()).Value.Content.ToMemory().Span);
            Assert.Equal(PredictionStatus.Rejected, document.Status);
        }

        // Exactly one prediction per image, of its current version, and none of the deleted images.
        var versions = new Dictionary<string, string>(StringComparer.Ordinal);
        await foreach (var image in host.Images.GetBlobsAsync())
        {
            versions[image.Name] = PredictionBlobs.VersionOf(image.Properties.ETag!.Value);
        }
        var predicted = new List<string>();
        await foreach (var prediction in host.Predictions.GetBlobsAsync(BlobTraits.Metadata, BlobStates.None, prefix: null, CancellationToken.None))
        {
            var image = prediction.Name[..^PredictionDocument.BlobSuffix.Length];
            predicted.Add(image);
            Assert.Equal(versions[image], prediction.Metadata[PredictionBlobs.ImageVersionMetadata]);
        }
        Assert.Equal(versions.Keys.Order(StringComparer.Ordinal), predicted);
    }

    [Fact]
    public async Task FeaturesJob_SeveralConsumersDuplicatesAndAKilledConsumer_StoreEveryImagesFeaturesOnce()
    {
        await using var host = await StartAsync(await model.SharedModelsAsync());
        for (var i = 0; i < 60; i++)
        {
            var label = ServingModelFixture.Labels[i % 3];
            await host.UploadAsync($"train/{label}/{i:D3}.png", ServingModelFixture.Image(label, seed: i, width: 48, height: 40));
        }
        await host.UploadAsync("train/red/bad.png", [1, 2, 3]);
        var (listed, extractor, key, jobs, queue, job) = await StartFeaturesJobAsync(host, shardSize: 8);
        Assert.Equal(8, job.Shards);
        await host.UploadAsync("train/green/001.png", ServingModelFixture.Image("blue", seed: 7)); // overwritten after the listing
        for (var shard = 0; shard < job.Shards; shard += 3)
        {
            await queue.SendMessageAsync(new ShardMessage(job.Id, shard).ToJson()); // delivered twice
        }
        // A consumer that dies while it runs a shard (cancelled): no result, and its message comes back.
        var victim = (await queue.ReceiveMessageAsync(Visibility)).Value;
        using (var kill = new CancellationTokenSource(TimeSpan.FromMilliseconds(30)))
        {
            try
            {
                await host.Function<ClassifyShard>().Run(victim, kill.Token);
            }
            catch (OperationCanceledException)
            {
                // killed before it finished; otherwise it finished, which changes nothing below
            }
        }

        var function = host.Function<ClassifyShard>();
        var deliveries = (await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => ConsumeAsync(queue, function, jobs, job.Id, TimeSpan.FromMinutes(4))))).Sum();

        var status = (await jobs.GetStatusAsync(job.Id))!;
        Assert.True(status.Finished);
        Assert.Empty(status.Parked);
        Assert.Equal(new ShardResult { Extracted = 59, Rejected = 1, Changed = 1 } with { Attempt = 0 }, status.Totals with { Attempt = 0, Seconds = 0 });
        Assert.True(deliveries >= job.Shards, $"{deliveries} deliveries");
        var store = TestStorage.CreateServiceClient().GetBlobContainerClient(host.Configuration("Classifier:FeaturesContainer"));
        var rows = new Dictionary<string, float[]>(StringComparer.Ordinal);
        var width = 0;
        var files = 0;
        await foreach (var blob in store.GetBlobsAsync(BlobTraits.None, BlobStates.None, key + "/", CancellationToken.None))
        {
            files++;
            var bytes = (await store.GetBlobClient(blob.Name).DownloadContentAsync()).Value.Content.ToArray();
            width = (int)SafeTensorsFile.Read(bytes, FeatureStore.TensorName, blob.Name).Shape[1];
            var (images, tensor) = FeatureStore.Parse(bytes, blob.Name, width);
            for (var i = 0; i < images.Count; i++)
            {
                Assert.True(rows.TryAdd(images[i].Name, tensor.Values[(i * width)..((i + 1) * width)]), $"{images[i].Name} is stored twice"); // one file per shard, rewritten by a duplicate
                Assert.Equal(listed.Single(l => $"{host.Images.Name}/{l.Blob}" == images[i].Name).Version, images[i].Version);
            }
        }
        Assert.Equal(job.Shards, files);
        Assert.Equal(59, rows.Count);
        Assert.DoesNotContain($"{host.Images.Name}/train/red/bad.png", rows.Keys);
        Assert.DoesNotContain($"{host.Images.Name}/train/green/001.png", rows.Keys);
        // The stored features are the extractor's on the image as training preprocesses it.
        using var engine = new OnnxEngine(extractor.Graph, new OnnxEngineOptions());
        var preprocessor = new ImagePreprocessor(extractor.Preprocessing);
        foreach (var name in rows.Keys.Order(StringComparer.Ordinal).Take(5))
        {
            var bytes = (await host.Images.GetBlobClient(name[(host.Images.Name.Length + 1)..]).DownloadContentAsync()).Value.Content;
            var expected = engine.ExtractFeatures(preprocessor.DecodeAndPreprocess(new ImageDecoder(), bytes.ToMemory()), 1);
            Assert.Equal(width, expected.Length);
            Assert.All(Enumerable.Range(0, width), j => Assert.Equal(expected[j], rows[name][j], 1e-4f));
        }
    }

    /// <summary>A features job over every image in the host's images container, with the fixture model's graph as the extractor.</summary>
    private async Task<(List<(string Blob, string Version)> Listed, FeatureExtractor Extractor, string Key, JobStore Jobs, QueueClient Queue, JobRecord Job)> StartFeaturesJobAsync(
        TestHost host, int shardSize)
    {
        var listed = new List<(string Blob, string Version)>();
        await foreach (var blob in host.Images.GetBlobsAsync())
        {
            listed.Add((blob.Name, PredictionBlobs.VersionOf(blob.Properties.ETag!.Value)));
        }
        var package = await ModelPackage.LoadAsync(model.Folder);
        var extractor = new FeatureExtractor(await File.ReadAllBytesAsync(Path.Combine(model.Folder, "model.onnx")), package.Manifest.Preprocessing, null);
        var key = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(extractor.Graph));
        var (jobs, queue) = Infrastructure(host);
        var job = await new FeatureJobPlanner(jobs, queue).StartAsync(host.Images.Name, key, extractor, listed, shardSize);
        return (listed, extractor, key, jobs, queue, job);
    }

    /// <summary>
    /// A shard larger than the worker's chunk (<see cref="FeatureShardWorker.ChunkSize"/>: it holds that many preprocessed
    /// images at a time) stores every image's own features, in order, with an undecodable image among them.
    /// </summary>
    [Fact]
    public async Task FeaturesShard_LargerThanAChunk_StoresEachImagesOwnFeatures()
    {
        await using var host = await StartAsync(await model.SharedModelsAsync());
        const int Images = FeatureShardWorker.ChunkSize + 10;
        for (var i = 0; i < Images; i++)
        {
            var label = ServingModelFixture.Labels[i % 3];
            await host.UploadAsync($"big/{i:D3}.png", i == 30 ? [1, 2, 3] : ServingModelFixture.Image(label, seed: 500 + i, width: 40, height: 40));
        }
        var (_, extractor, key, jobs, queue, job) = await StartFeaturesJobAsync(host, shardSize: Images);
        Assert.Equal(1, job.Shards);

        await ConsumeAsync(queue, host.Function<ClassifyShard>(), jobs, job.Id, TimeSpan.FromMinutes(2));

        Assert.Equal(new ShardResult { Extracted = Images - 1, Rejected = 1 } with { Attempt = 0 }, (await jobs.GetStatusAsync(job.Id))!.Totals with { Attempt = 0, Seconds = 0 });
        var store = TestStorage.CreateServiceClient().GetBlobContainerClient(host.Configuration("Classifier:FeaturesContainer"));
        var file = await store.GetBlobsAsync(BlobTraits.None, BlobStates.None, key + "/", CancellationToken.None).SingleAsync();
        var bytes = (await store.GetBlobClient(file.Name).DownloadContentAsync()).Value.Content.ToArray();
        var width = (int)SafeTensorsFile.Read(bytes, FeatureStore.TensorName, file.Name).Shape[1];
        var (stored, tensor) = FeatureStore.Parse(bytes, file.Name, width);
        Assert.Equal(Images - 1, stored.Count);
        using var engine = new OnnxEngine(extractor.Graph, new OnnxEngineOptions());
        var preprocessor = new ImagePreprocessor(extractor.Preprocessing);
        for (var i = 0; i < stored.Count; i++)
        {
            var image = (await host.Images.GetBlobClient(stored[i].Name[(host.Images.Name.Length + 1)..]).DownloadContentAsync()).Value.Content;
            var expected = engine.ExtractFeatures(preprocessor.DecodeAndPreprocess(new ImageDecoder(), image.ToMemory()), 1);
            Assert.All(Enumerable.Range(0, width), j => Assert.Equal(expected[j], tensor.Values[(i * width) + j], 1e-4f));
        }
    }

    /// <summary>Images whose prediction could never be named (over 1,014 characters) are left out of the shards, which hold the others.</summary>
    [Fact]
    public async Task ShardPlanner_LeavesOutNamesTooLongForAPrediction()
    {
        var models = await TestStorage.CreateContainerAsync("models-empty");
        await using var host = await StartAsync(models);
        var image = ServingModelFixture.Image("red", seed: 40);
        var tooLong = new[] { "a/" + new string('x', 1018) + ".png", "c/" + new string('y', 1016) + ".png" };
        foreach (var name in tooLong.Concat(["a/ok.png", "b/ok.png", "d/ok.png"]))
        {
            await host.UploadAsync(name, image);
        }
        var (jobs, queue) = Infrastructure(host);

        var job = await new ShardPlanner(host.Images, host.Predictions, jobs, queue).StartAsync(shardSize: 2);

        Assert.Equal((2, 3L), (job.Shards, job.Items));
        var planned = new List<string>();
        for (var shard = 0; shard < job.Shards; shard++)
        {
            planned.AddRange((await jobs.ReadShardAsync(new ShardMessage(job.Id, shard)))!.Items.Select(i => i.Name));
        }
        Assert.Equal(["a/ok.png", "b/ok.png", "d/ok.png"], planned);
    }

    [Fact]
    public async Task FailingShard_IsRetriedThenParkedWithItsReason_AndRunningAgainFinishesIt()
    {
        var models = await TestStorage.CreateContainerAsync("models-empty");
        await using var host = await StartAsync(models);
        foreach (var i in Enumerable.Range(0, 5))
        {
            await host.UploadAsync($"{i}.png", ServingModelFixture.Image("red", seed: i));
        }
        var (jobs, queue) = Infrastructure(host);
        var job = await new ShardPlanner(host.Images, host.Predictions, jobs, queue).StartAsync(shardSize: 3);
        Assert.Equal(2, job.Shards);
        var function = host.Function<ClassifyShard>();

        // No model is live: each delivery fails and the message comes back, until the last one parks the shard.
        var deliveries = 0;
        for (var delivery = 1; delivery <= ContainerDefaults.ShardMaxAttempts; delivery++)
        {
            foreach (var message in (await queue.ReceiveMessagesAsync(maxMessages: 2, TimeSpan.FromSeconds(1))).Value)
            {
                Assert.Equal(delivery, message.DequeueCount);
                deliveries++;
                if (delivery < ContainerDefaults.ShardMaxAttempts)
                {
                    var failure = await Assert.ThrowsAsync<ShardFailedException>(() => function.Run(message, CancellationToken.None));
                    Assert.Contains("no model is live", failure.Message, StringComparison.Ordinal);
                }
                else
                {
                    await function.Run(message, CancellationToken.None);
                    await queue.DeleteMessageAsync(message.MessageId, message.PopReceipt);
                }
            }
            await Task.Delay(TimeSpan.FromSeconds(1.2));
        }
        Assert.Equal(2 * ContainerDefaults.ShardMaxAttempts, deliveries);
        var status = (await jobs.GetStatusAsync(job.Id))!;
        Assert.True(status.Finished);
        Assert.Equal(0, status.ShardsDone);
        Assert.Equal([0, 1], status.Parked.Select(p => p.Shard).Order());
        Assert.All(status.Parked, p => Assert.Equal(ContainerDefaults.ShardMaxAttempts, p.Attempts));
        Assert.All(status.Parked, p => Assert.Contains("no model is live", p.Reason, StringComparison.Ordinal));

        // With a model live, starting again lists only what is missing (all 5) and finishes it.
        await using var live = await StartAsync(await model.SharedModelsAsync(), host);
        var again = await new ShardPlanner(host.Images, host.Predictions, jobs, queue).StartAsync(shardSize: 3);
        Assert.Equal(5, again.Items);
        await ConsumeAsync(queue, live.Function<ClassifyShard>(), jobs, again.Id, TimeSpan.FromMinutes(1));
        var finished = (await jobs.GetStatusAsync(again.Id))!;
        Assert.Equal(5, finished.Totals.Classified);
        Assert.Empty(finished.Parked);
    }

    [Fact]
    public async Task MessageThatIsNotAShard_IsDropped()
    {
        await using var host = await StartAsync(await model.SharedModelsAsync());
        var (_, queue) = Infrastructure(host);
        await queue.CreateIfNotExistsAsync();
        await queue.SendMessageAsync("{\"job\": \"../../secrets\", \"shard\": 1}");
        var message = (await queue.ReceiveMessageAsync()).Value;
        await host.Function<ClassifyShard>().Run(message, CancellationToken.None); // returns: the host deletes it
        Assert.Throws<FormatException>(() => ShardMessage.Parse("not json"));
        Assert.Throws<FormatException>(() => ShardMessage.Parse("{\"job\": \"20261202-000000-abcdef\", \"shard\": -1}"));
    }

    /// <summary>A host whose jobs container and shard queue are its own; <paramref name="sameStorageAs"/> shares another host's containers.</summary>
    private static Task<TestHost> StartAsync(Azure.Storage.Blobs.BlobContainerClient models, TestHost? sameStorageAs = null)
    {
        var suffix = Guid.NewGuid().ToString("N")[..12];
        var settings = new Dictionary<string, string?>
        {
            ["Classifier:JobsContainer"] = $"jobs-{suffix}",
            ["Classifier:ShardQueue"] = $"shards-{suffix}",
            ["Classifier:FeaturesContainer"] = $"features-{suffix}",
        };
        if (sameStorageAs is not null)
        {
            settings["Classifier:ImagesContainer"] = sameStorageAs.Images.Name; // the host's own Images/Predictions properties stay its fresh ones
            settings["Classifier:PredictionsContainer"] = sameStorageAs.Predictions.Name;
            settings["Classifier:JobsContainer"] = sameStorageAs.Configuration("Classifier:JobsContainer");
            settings["Classifier:ShardQueue"] = sameStorageAs.Configuration("Classifier:ShardQueue");
        }
        return TestHost.StartAsync(settings, models);
    }

    private static (JobStore Jobs, QueueClient Queue) Infrastructure(TestHost host) =>
        (new JobStore(TestStorage.CreateServiceClient().GetBlobContainerClient(host.Configuration("Classifier:JobsContainer"))),
         new QueueClient(TestStorage.ConnectionString, host.Configuration("Classifier:ShardQueue"), new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 }));

    private static Task<int> ConsumeAsync(QueueClient queue, ClassifyShard function, JobStore jobs, string job, TimeSpan limit) =>
        QueueConsumer.RunAsync(queue, function.Run, jobs, job, limit);
}
