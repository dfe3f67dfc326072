using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Tests;

/// <summary>Small but real models and images for inference and storage tests.</summary>
internal static class TestModels
{
    public static readonly string[] ColourLabels = ["red", "green", "blue"];

    /// <summary>
    /// A torchvision ResNet-18 at 64px whose linear head is fitted (least squares on its features) to
    /// tell red, green and blue noisy squares apart: a trained-in-test, distinguishable model in a second.
    /// Saved for serving (weights + verified model.onnx) into <paramref name="folder"/>.
    /// </summary>
    public static ModelManifest SaveColourModel(string folder, int seed = 1, double threshold = 0.0)
    {
        TorchRuntime.EnsureInitialized();
        manual_seed(seed);
        var preprocessing = PreprocessingConfig.TorchVision with { InputSize = 64, ResizeSize = 64 };
        using var model = new ImageClassifier(BackboneCatalog.Create("resnet18"), HeadSpec.Linear(3));
        model.eval();
        var preprocessor = new ImagePreprocessor(preprocessing);
        var decoder = new ImageDecoder();
        var inputs = new List<float[]>();
        var targets = new List<int>();
        for (var c = 0; c < 3; c++)
        {
            for (var i = 0; i < 6; i++)
            {
                using var image = decoder.Decode(ColourPng(c, (seed * 100) + i));
                inputs.Add(preprocessor.Preprocess(image));
                targets.Add(c);
            }
        }
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            var x = stack(inputs.Select(i => tensor(i, [3, 64, 64])).ToArray());
            var features = model.Backbone.forward(x);
            var design = cat([features, ones(features.shape[0], 1)], 1);
            var y = nn.functional.one_hot(tensor(targets.Select(t => (long)t).ToArray()), 3).to_type(ScalarType.Float32) * 10;
            var solution = linalg.lstsq(design, y).Solution; // (F+1, 3)
            var state = model.state_dict();
            state["head.fc.weight"].copy_(solution[..^1].t());
            state["head.fc.bias"].copy_(solution[^1]);
        }
        var manifest = new ModelManifest
        {
            Backbone = "resnet18",
            Head = HeadSpec.Linear(3),
            Labels = ColourLabels,
            Preprocessing = preprocessing,
            ConfidenceThreshold = threshold,
        };
        return ModelCheckpoint.SaveForServing(model, manifest, folder, inputs.Take(4).ToList(), meanImage: null);
    }

    /// <summary>A noisy 48x40 PNG dominated by colour 0 (red), 1 (green) or 2 (blue).</summary>
    public static byte[] ColourPng(int colour, int seed)
    {
        var random = new Random(seed);
        using var image = new Image<Rgb24>(48, 40);
        for (var y = 0; y < image.Height; y++)
        {
            for (var x = 0; x < image.Width; x++)
            {
                var strong = (byte)random.Next(180, 256);
                var weak = (byte)random.Next(0, 70);
                image[x, y] = colour switch
                {
                    0 => new Rgb24(strong, weak, weak),
                    1 => new Rgb24(weak, strong, weak),
                    _ => new Rgb24(weak, weak, strong),
                };
            }
        }
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }
}
