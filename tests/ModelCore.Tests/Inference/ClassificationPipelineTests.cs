using System.Diagnostics;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using Xunit.Abstractions;

namespace ServerlessClassifier.ModelCore.Tests.Inference;

[Collection(TorchTests.Collection)]
public sealed class ClassificationPipelineTests : IDisposable
{
    private readonly string folder = Path.Combine(Path.GetTempPath(), $"pipeline-{Guid.NewGuid():N}");
    private readonly ITestOutputHelper output;

    public ClassificationPipelineTests(ITestOutputHelper output)
    {
        this.output = output;
        TestModels.SaveColourModel(folder);
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);

    [Fact]
    public async Task ServingAndTorchSharp_AgreeOnEveryImage_AndClassifyColoursRight()
    {
        var package = await ModelPackage.LoadAsync(folder);
        using var serving = ClassificationPipeline.CreateServing(package);
        using var torch = new ClassificationPipeline(package.Manifest, new TorchSharpEngine(ModelCheckpoint.CreateTorchModel(package), 64), null);
        Assert.Equal("onnxruntime", serving.Engine.Name);

        for (var colour = 0; colour < 3; colour++)
        {
            for (var i = 0; i < 3; i++)
            {
                var image = TestModels.ColourPng(colour, 5000 + i);
                var a = serving.Classify(image, top: 3);
                var b = torch.Classify(image, top: 3);
                Assert.Equal(TestModels.ColourLabels[colour], a.Label);
                Assert.Equal(b.Label, a.Label);
                Assert.InRange(Math.Abs(a.Confidence - b.Confidence), 0, 1e-4);
                Assert.Equal(3, a.Top.Count);
                Assert.InRange(a.Top.Sum(t => t.Probability), 0.999, 1.001);
                Assert.True(a.Timings.DecodeMs >= 0 && a.Timings.InferenceMs > 0, "timings are measured");
            }
        }
    }

    [Fact]
    public async Task Classify_BelowThreshold_AnswersUnknownButKeepsTheRanking()
    {
        using var pipeline = ClassificationPipeline.CreateServing(await ModelPackage.LoadAsync(folder));
        var image = TestModels.ColourPng(0, 77);
        var confident = pipeline.Classify(image, top: 2, threshold: 0);
        var strict = pipeline.Classify(image, top: 2, threshold: 1);

        Assert.False(confident.IsUnknown);
        Assert.Equal("red", confident.Label);
        Assert.True(strict.IsUnknown);
        Assert.Equal(ClassificationPipeline.UnknownLabel, strict.Label);
        Assert.Equal("red", strict.Top[0].Label);
        Assert.Throws<ArgumentOutOfRangeException>(() => pipeline.Classify(image, threshold: 1.5));
    }

    [Theory]
    [InlineData(new byte[0], ImageErrorCode.Empty)]
    [InlineData(new byte[] { 0x47, 0x49, 0x46, 0x38, 0x39, 0x61 }, ImageErrorCode.Corrupt)]
    [InlineData(new byte[] { 0x68, 0x65, 0x6c, 0x6c, 0x6f }, ImageErrorCode.UnsupportedFormat)]
    public async Task Classify_BadInput_ThrowsTypedError(byte[] input, ImageErrorCode code)
    {
        using var pipeline = ClassificationPipeline.CreateServing(await ModelPackage.LoadAsync(folder));
        var error = Assert.Throws<ImageRejectedException>(() => pipeline.Classify(input));
        Assert.Equal(code, error.Code);
    }

    [Fact]
    public async Task ClassifyPrepared_BatchEqualsOneByOne()
    {
        using var pipeline = ClassificationPipeline.CreateServing(await ModelPackage.LoadAsync(folder));
        var images = Enumerable.Range(0, 5).Select(i => TestModels.ColourPng(i % 3, 900 + i)).ToList();
        var batch = pipeline.ClassifyPrepared([.. images.Select(i => pipeline.Prepare(i))], top: 3);
        for (var i = 0; i < images.Count; i++)
        {
            var single = pipeline.Classify(images[i], top: 3);
            Assert.Equal(single.Label, batch[i].Label);
            Assert.InRange(Math.Abs(single.Confidence - batch[i].Confidence), 0, 1e-5);
        }
    }

    /// <summary>
    /// Two rounds of 2,000 TorchSharp predictions from 4 threads. Bound: in at least one round the process
    /// grows by at most 64 MB after warm-up. A leak of only the 48 KB input tensor per call would add about 96 MB in every round of 2,000 calls
    /// (and leaking activations, many MB per call, would be far worse), while allocator caching and
    /// thread arenas account for well under 64 MB, so the bound catches any per-call native leak.
    /// </summary>
    [Fact]
    public async Task TorchSharpEngine_TwoThousandConcurrentPredictions_KeepMemoryBounded()
    {
        var package = await ModelPackage.LoadAsync(folder);
        using var pipeline = new ClassificationPipeline(package.Manifest, new TorchSharpEngine(ModelCheckpoint.CreateTorchModel(package), 64), null);
        var images = Enumerable.Range(0, 8).Select(i => pipeline.Prepare(TestModels.ColourPng(i % 3, 300 + i))).ToList();
        var expected = images.Select(i => pipeline.ClassifyPrepared([i])[0].Label).ToList();

        void Run(int count) => Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = 4 }, i =>
        {
            var result = pipeline.ClassifyPrepared([images[i % images.Count]])[0];
            Assert.Equal(expected[i % images.Count], result.Label);
        });

        Run(200);
        // Two rounds: a per-call native leak grows the process in both, while allocator warm-up and
        // whatever else the test process does meanwhile (it is process-wide) rarely hits both.
        var growths = new double[2];
        for (var round = 0; round < growths.Length; round++)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var before = Process.GetCurrentProcess().WorkingSet64;
            Run(2000);
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var after = Process.GetCurrentProcess().WorkingSet64;
            growths[round] = (after - before) / (1024.0 * 1024.0);
            output.WriteLine($"round {round + 1}: working set {before / 1048576.0:F0} MB -> {after / 1048576.0:F0} MB after 2,000 predictions (growth {growths[round]:F1} MB)");
        }
        var growthMb = growths.Min();
        Assert.True(growthMb < 64, $"working set grew by {growthMb:F1} MB over 2,000 predictions");
    }
}
