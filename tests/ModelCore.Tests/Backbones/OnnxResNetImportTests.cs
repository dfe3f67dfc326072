using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.Tests.Common;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests.Backbones;

[Collection(TorchTests.Collection)]
public sealed class OnnxResNetImportTests(ITestOutputHelper output)
{
    private static string ModelPath => Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.ModelFileName);

    private static string PreprocessPath => Path.Combine(OnnxResNetImporter.DefaultDirectory, OnnxResNetImporter.PreprocessFileName);

    [Fact]
    public void ImportedBackbone_MatchesOnnxRuntimeOnRealImages()
    {
        TorchRuntime.EnsureInitialized();
        using var backbone = OnnxResNetImporter.LoadBackbone(ModelPath);
        var meanImage = OnnxResNetImporter.LoadMeanImage(PreprocessPath);
        using var preprocess = new InferenceSession(PreprocessPath);
        using var reference = new InferenceSession(ModelPath);
        using var noGrad = inference_mode();

        var worst = 0.0;
        foreach (var file in TestAssets.SampleEmoji(12))
        {
            var rgb = LoadRgb224(file);

            // Reference: ML.NET's own ONNX preprocessing graph, then the original ONNX ResNet, in ONNX Runtime.
            var input = new DenseTensor<float>(rgb, [1, 3, 224, 224]);
            using var prepared = preprocess.Run([NamedOnnxValue.CreateFromTensor("OriginalInput", input)]);
            var bgrMinusMean = prepared[0].AsTensor<float>().ToArray();
            using var features = reference.Run([NamedOnnxValue.CreateFromTensor("Input247", new DenseTensor<float>(bgrMinusMean, [1, 3, 224, 224]))]);
            var expected = features[0].AsTensor<float>().ToArray();

            // Ours: the same preprocessing written from the manifest's terms (BGR, minus mean image), then TorchSharp.
            using var scope = NewDisposeScope();
            var x = tensor(rgb, [1, 3, 224, 224]).index_select(1, tensor(new long[] { 2, 1, 0 })) - tensor(meanImage, [1, 3, 224, 224]);
            var actual = backbone.forward(x).data<float>().ToArray();

            Assert.Equal(512, actual.Length);
            Assert.Equal(expected.Length, actual.Length);
            var scale = expected.Max(Math.Abs);
            Assert.True(scale > 0.1, $"{Path.GetFileName(file)}: reference features are all near zero");
            var difference = expected.Zip(actual, (e, a) => Math.Abs(e - a)).Max() / scale;
            worst = Math.Max(worst, difference);
            Assert.True(difference <= 1e-3, $"{Path.GetFileName(file)}: max abs difference {difference:E2} of the feature scale {scale:F3}");
        }
        output.WriteLine($"worst max-abs difference over 12 emoji: {worst:E2} of the feature scale");
        Assert.True(worst > 0, "the two engines agreeing bit for bit would suggest the same engine ran twice");
    }

    [Fact]
    public void ImportedBackbone_HasTheOnnxArchitecture()
    {
        TorchRuntime.EnsureInitialized();
        using var backbone = OnnxResNetImporter.LoadBackbone(ModelPath);
        Assert.Equal(ResNetArchitecture.OnnxResNet18, backbone.Architecture);
        Assert.Equal(512, backbone.NumFeatures);
        var keys = backbone.state_dict().Keys.ToList();
        Assert.Contains("layer4.2.conv2.weight", keys);
        Assert.DoesNotContain("layer4.3.conv1.weight", keys);
        Assert.Contains("layer2.0.downsample.1.running_var", keys);
    }

    [Fact]
    public void MeanImage_IsBgrImageNetMean()
    {
        var mean = OnnxResNetImporter.LoadMeanImage(PreprocessPath);
        Assert.Equal(3 * 224 * 224, mean.Length);
        var plane = 224 * 224;
        var channelMeans = Enumerable.Range(0, 3).Select(c => mean.Skip(c * plane).Take(plane).Average()).ToArray();
        // ImageNet's mean in BGR order is about (104, 117, 123).
        Assert.InRange(channelMeans[0], 100, 108);
        Assert.InRange(channelMeans[1], 112, 120);
        Assert.InRange(channelMeans[2], 119, 127);
    }

    [Fact]
    public void LoadBackbone_RefusesAGraphOfAnotherShape()
    {
        TorchRuntime.EnsureInitialized();
        var error = Assert.Throws<InvalidDataException>(() => OnnxResNetImporter.LoadBackbone(PreprocessPath));
        Assert.Contains("convolutions", error.Message, StringComparison.Ordinal);
    }

    /// <summary>An emoji flattened on white and resized to 224x224, as RGB planes in 0..255.</summary>
    private static float[] LoadRgb224(string file)
    {
        using var image = Image.Load<Rgba32>(file);
        image.Mutate(c => c.BackgroundColor(Color.White).Resize(224, 224, KnownResamplers.Triangle));
        var rgb = new float[3 * 224 * 224];
        using var flat = image.CloneAs<Rgb24>();
        for (var y = 0; y < 224; y++)
        {
            for (var x = 0; x < 224; x++)
            {
                var p = flat[x, y];
                rgb[(y * 224) + x] = p.R;
                rgb[(224 * 224) + (y * 224) + x] = p.G;
                rgb[(2 * 224 * 224) + (y * 224) + x] = p.B;
            }
        }
        return rgb;
    }
}
