using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Training;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Training;

/// <summary>Head mode's linear probe end to end on synthetic shapes (random-init ResNet-18 at 64 px: fast).</summary>
[Collection(TorchTests.Collection)]
public sealed class ProbeTrainingTests(ITestOutputHelper output)
{
    private static readonly TrainingOptions Small = new() { Backbone = "resnet18", InputSize = 64 };

    [Fact]
    public async Task FlipFeatures_AreTheFeaturesOfTheMirroredImage()
    {
        TorchRuntime.EnsureInitialized();
        using var shapes = new SyntheticShapes(perClass: 2, size: 64);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var setup = new TransferTrainer().CreateModel(Small, dataset.Labels.Count);
        using var model = setup.Model;
        model.eval();
        var preprocessor = new ImagePreprocessor(setup.Preprocessing, setup.MeanImage);
        var loader = new TrainingData(dataset, new ImageDecoder(), preprocessor.DecodeShorterSide, [], null);
        var cache = await loader.ExtractFeaturesAsync(model, preprocessor, batchSize: 3, default, flip: true);

        Assert.NotNull(cache.TrainFlipped);
        Assert.Equal(cache.Train.Length, cache.TrainFlipped.Length);
        Assert.Equal(cache.Validation.Length, cache.ValidationFlipped!.Length);
        var decoder = new ImageDecoder();
        double worst = 0, unlike = 0;
        for (var i = 0; i < dataset.Train.Count; i++)
        {
            using var image = decoder.Decode(await dataset.Train[i].ReadAsync(default));
            // Mirror the pixels by hand (not through the code under test).
            using var mirror = image.Clone();
            for (var y = 0; y < image.Height; y++)
            {
                for (var x = 0; x < image.Width; x++)
                {
                    mirror[x, y] = image[image.Width - 1 - x, y];
                }
            }
            using var mode = inference_mode();
            using var features = model.Backbone.call(tensor(preprocessor.Preprocess(mirror), [1, 3, 64, 64]));
            var expected = features.data<float>().ToArray();
            var scale = expected.Max(Math.Abs);
            for (var f = 0; f < cache.NumFeatures; f++)
            {
                var index = (i * cache.NumFeatures) + f;
                worst = Math.Max(worst, Math.Abs(expected[f] - cache.TrainFlipped[index]) / scale);
                unlike = Math.Max(unlike, Math.Abs(cache.Train[index] - cache.TrainFlipped[index]) / scale);
            }
        }
        output.WriteLine($"flipped features vs the mirror image's: {worst:E2}; vs the unflipped image's: {unlike:E2}");
        Assert.True(worst <= 1e-4, $"{worst}");
        Assert.True(unlike > 1e-2, $"{unlike}"); // the shapes sit off-centre: mirroring changes the features
    }

    [Fact]
    public async Task HeadMode_FitsTheProbeOnEveryImage_AndTheExportStillMatchesTorchSharp()
    {
        using var shapes = new SyntheticShapes(perClass: 8, size: 64);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, Small.ToDatasetOptions());
        using var result = await new TransferTrainer().TrainAsync(dataset, Small, null, null);

        var probe = result.Manifest.Training!.Probe;
        Assert.NotNull(probe);
        output.WriteLine($"probe {probe.Seconds:F2} s, L2 {probe.Lambda:G3}, T {probe.Temperature:F3}, ECE {probe.EceBefore:F3} -> {probe.EceAfter:F3}, rows {probe.Rows}, OOF accuracy {result.Validation.Accuracy:P1}");
        var images = dataset.Train.Count + dataset.Validation.Count;
        Assert.Equal(images, probe.Images);
        Assert.Equal(2 * images, probe.Rows); // flipped copies by default
        Assert.Equal(images, result.ValidationPredictions.Count); // every image scored out-of-fold
        Assert.Equal(images, result.Manifest.Metrics!.Samples);
        Assert.True(probe.EceAfter <= probe.EceBefore + 1e-9, $"{probe.EceBefore} -> {probe.EceAfter}");
        Assert.True(result.Validation.Accuracy >= 0.8, $"out-of-fold accuracy {result.Validation.Accuracy}");

        var verified = OnnxExport.ExportVerified(result.Model, 64, result.VerificationInputs);
        output.WriteLine($"export: max |dp| {verified.MaxAbsDifference:E2} over {verified.Samples} inputs");
        Assert.True(verified.MaxAbsDifference <= OnnxExport.DefaultTolerance);
    }
}
