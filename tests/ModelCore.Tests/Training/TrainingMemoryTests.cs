using System.Diagnostics.Metrics;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>
/// Training memory must not grow with the data set: the data path holds a batch of decoded images at a time, never
/// every image. Watched through the real code's <c>training.images_in_memory</c> counter, not RSS (the machine is noisy).
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class TrainingMemoryTests
{
    [Theory]
    [InlineData(TrainingMode.Head, true)]
    [InlineData(TrainingMode.Finetune, true)]
    [InlineData(TrainingMode.Finetune, false)]
    [InlineData(TrainingMode.Full, true)]
    public async Task Training_HoldsAtMostABatchOfDecodedImages(TrainingMode mode, bool probe)
    {
        // 36 images, 29 of them for training: a path that kept every image would hold far more than a batch of 4.
        using var shapes = new SyntheticShapes(perClass: 12, size: 48);
        TrainingPlan plan = mode switch
        {
            TrainingMode.Head => EngineRuns.Head with { InputSize = 32 },
            // Finetune with views caches the prefix; without them it runs the whole network on streamed images.
            TrainingMode.Finetune => EngineRuns.Finetune with { InputSize = 32, Epochs = 1, BatchSize = 4, Start = probe ? HeadStart.Probe : HeadStart.Random, PrefixViews = probe ? 2 : 0 },
            _ => EngineRuns.Full with { InputSize = 32, Epochs = 1, BatchSize = 4, Start = probe ? HeadStart.Probe : HeadStart.Random },
        };
        var dataset = await EngineRuns.LoadAsync(shapes.Root, plan);
        using var watch = new ImagesInMemoryWatch();
        var run = new TrainingRun { FeatureBatchSize = 4 };

        using var result = await EngineRuns.TrainAsync(plan, dataset, run: run);

        // A batch, or (while an epoch's batch is decoded in parallel) one image per core; the validation split has 7 images.
        var bound = Math.Max(run.FeatureBatchSize, Math.Min(Environment.ProcessorCount, dataset.Validation.Count));
        Assert.True(dataset.Train.Count > 2 * bound, $"the set must be larger than a batch ({dataset.Train.Count} training images)");
        Assert.InRange(watch.Peak, 1, bound);
        Assert.Equal(0, watch.Current);
        Assert.NotEmpty(result.History);
    }

    [Fact]
    public async Task ManifestDataSet_KeepsDownloadedBytesOnDisk_NotInMemory()
    {
        // A manifest's images, like blobs, are read once and kept for training: in the spool file, not as an array per image.
        using var shapes = new SyntheticShapes(perClass: 4, size: 32);
        var files = Directory.GetFiles(shapes.Root, "*.png", SearchOption.AllDirectories);
        var manifest = Path.Combine(shapes.Root, "labels.csv");
        await File.WriteAllLinesAsync(manifest, ["image,label", .. files.Select(f => $"{Path.GetRelativePath(shapes.Root, f).Replace('\\', '/')},{Path.GetFileName(Path.GetDirectoryName(f))}")]);
        var dataset = await ImageFolderDataset.FromManifestAsync(manifest);
        foreach (var file in files)
        {
            File.Delete(file); // training no longer needs the source
        }

        foreach (var image in dataset.Train.Concat(dataset.Validation))
        {
            var first = await image.ReadAsync(CancellationToken.None);
            var second = await image.ReadAsync(CancellationToken.None);
            Assert.Equal(image.Bytes, first.Length);
            Assert.Equal(first, second);
            Assert.NotSame(first, second); // read from the spool each time: nothing holds the image's bytes in between
        }
    }

    [Fact]
    public async Task ImageSpool_ReadsBackWhatWasAdded_InParallel()
    {
        var spool = new ImageSpool(Path.GetTempPath());
        var random = new Random(3);
        var images = Enumerable.Range(0, 50).Select(i => Enumerable.Range(0, random.Next(1, 5000)).Select(_ => (byte)random.Next(256)).ToArray()).ToList();
        var reads = images.Select(spool.Add).ToList();

        var back = await Task.WhenAll(reads.Select(r => Task.Run(() => r(CancellationToken.None))));

        Assert.Equal(images.Sum(i => (long)i.Length), spool.Length);
        Assert.Equal(images, back);
    }

    /// <summary>Follows the counter's running total and its peak while it lives.</summary>
    private sealed class ImagesInMemoryWatch : IDisposable
    {
        private readonly MeterListener listener = new();
        private readonly Lock gate = new();
        private long current;

        public ImagesInMemoryWatch()
        {
            listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "ServerlessClassifier.Training" && instrument.Name == "training.images_in_memory")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            };
            listener.SetMeasurementEventCallback<int>((_, value, _, _) =>
            {
                lock (gate)
                {
                    current += value;
                    Peak = Math.Max(Peak, current);
                }
            });
            listener.Start();
        }

        public long Peak { get; private set; }

        public long Current
        {
            get
            {
                lock (gate)
                {
                    return current;
                }
            }
        }

        public void Dispose() => listener.Dispose();
    }
}
