using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Ood;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// Small, distinguishable serving models, made in milliseconds without TorchSharp: <see cref="ColourModel"/>'s graph
/// (64 px input, torchvision's preprocessing) in a model folder with its manifest, as the app loads any published
/// model. A second folder has the same files with the labels listed in reverse, so a hot swap to it is visible in
/// every answer; a third adds out-of-distribution statistics fitted on the graph's features of the synthetic red,
/// green and blue training images. The engine-trained models and every architecture's exported graph are served
/// in tests/ModelCore.Tests and tests/TrainJob.Tests, which reference the training library.
/// </summary>
public sealed class ServingModelFixture : IDisposable
{
    public static readonly string[] Labels = ["red", "green", "blue"];

    private static readonly Rgb24[] Colours = [new(220, 30, 30), new(30, 200, 40), new(30, 40, 220)];

    public ServingModelFixture()
    {
        Root = Path.Combine(Path.GetTempPath(), $"functions-tests-{Guid.NewGuid():N}");
        Folder = Path.Combine(Root, "v1");
        ReversedFolder = Path.Combine(Root, "reversed");
        OodFolder = Path.Combine(Root, "ood");
        ClassThresholdFolder = Path.Combine(Root, "class-thresholds");
        var preprocessing = PreprocessingConfig.TorchVision with { InputSize = 64, ResizeSize = 64 };
        var graph = ColourModel.Graph(preprocessing.InputSize);
        var manifest = new ModelManifest
        {
            Backbone = "colour-means",
            BackboneSource = "hand-built test graph (ColourModel)",
            Head = HeadSpec.Linear(Labels.Length),
            Labels = Labels,
            Preprocessing = preprocessing,
            ConfidenceThreshold = 0.5,
            Metrics = new ValidationMetrics { Accuracy = 1, Samples = 24 },
        };
        ColourModel.WritePackage(Folder, manifest, (ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph));
        ColourModel.WritePackage(ClassThresholdFolder, manifest with { ClassThresholds = new ClassThresholdSpec("precision=0.99", new Dictionary<string, double> { ["red"] = 0.999 }) },
            (ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph));
        ColourModel.WritePackage(ReversedFolder, manifest with { Labels = [.. Enumerable.Reverse(Labels)] }, (ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph));

        // Multi-label: sigmoids, and blue's threshold above what a magenta image gives it (about 0.98) while red's is 0.5.
        MultiLabelFolder = Path.Combine(Root, "multilabel");
        ColourModel.WritePackage(MultiLabelFolder, manifest with
        {
            Head = HeadSpec.Linear(Labels.Length) with { MultiLabel = true },
            Kind = ModelKind.MultiLabel,
            LabelThresholds = MultiLabelThresholds,
            ConfidenceThreshold = 0,
        }, (ModelFileRoles.Onnx, ColourModel.OnnxFileName, ColourModel.Graph(preprocessing.InputSize, multiLabel: true)));

        var (statistics, spec) = FitOutOfDistribution(graph, preprocessing);
        ColourModel.WritePackage(OodFolder, manifest with { OutOfDistribution = spec },
            (ModelFileRoles.Onnx, ColourModel.OnnxFileName, graph), (ModelFileRoles.OutOfDistribution, spec.File, statistics.ToBytes()));
    }

    public string Root { get; }

    /// <summary>
    /// A models container with <see cref="Folder"/> published as version <c>v1</c> and live, shared by the tests
    /// that only read it.
    /// </summary>
    public Task<BlobContainerClient> SharedModelsAsync() => sharedModels.Value;

    private Lazy<Task<BlobContainerClient>> sharedModels => lazyShared ??= new(async () =>
    {
        var container = await TestStorage.CreateContainerAsync("models-shared");
        await new ModelStore(container).PublishAsync(Folder, version: "v1");
        return container;
    });

    private Lazy<Task<BlobContainerClient>>? lazyShared;

    /// <summary>The model with out-of-distribution statistics: its predictions carry an <c>outOfDistribution</c> score.</summary>
    public string OodFolder { get; }

    /// <summary>The multi-label model's thresholds, in <see cref="Labels"/> order.</summary>
    public static readonly double[] MultiLabelThresholds = [0.5, 0.5, 0.99];

    /// <summary>The same graph with sigmoid outputs as a multi-label model, each label with its threshold (<see cref="MultiLabelThresholds"/>).</summary>
    public string MultiLabelFolder { get; }

    /// <summary>A flat magenta image: red and blue at once (sigmoids about 0.96 and 0.98 under the multi-label model), green not.</summary>
    public static byte[] Magenta() => Solid(220, 30, 220);

    /// <summary>A 64 x 64 PNG of one colour.</summary>
    public static byte[] Solid(byte red, byte green, byte blue)
    {
        using var image = new Image<Rgb24>(64, 64, new Rgb24(red, green, blue));
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    /// <summary>The model with a threshold of its own for red (0.999, above the graph's top probabilities of about 0.997); the others keep 0.5.</summary>
    public string ClassThresholdFolder { get; }

    /// <summary>The model: red, green, blue.</summary>
    public string Folder { get; }

    /// <summary>The same graph with the labels reversed: a red image is called "blue".</summary>
    public string ReversedFolder { get; }

    /// <summary>A 64x64 PNG of one colour with per-pixel noise (<paramref name="seed"/> makes it reproducible).</summary>
    public static byte[] Image(string label, int seed, int width = 64, int height = 64)
    {
        var colour = Colours[Array.IndexOf(Labels, label)];
        var random = new Random(seed);
        using var image = new Image<Rgb24>(width, height);
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                image[x, y] = new Rgb24(Jitter(colour.R, random), Jitter(colour.G, random), Jitter(colour.B, random));
            }
        }
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    /// <summary>
    /// Statistics of the graph's features of 8 noisy images per colour, as the out-of-distribution score reads them:
    /// the class means, and the pooled within-class variance of each feature (the components are the feature axes).
    /// The cut-off is twice the largest training image's distance, so that other noisy squares of these colours are
    /// in distribution and anything unlike them (an emoji) is far outside.
    /// </summary>
    private static (FeatureStatistics Statistics, OutOfDistributionSpec Spec) FitOutOfDistribution(byte[] graph, PreprocessingConfig preprocessing)
    {
        var preprocessor = new ImagePreprocessor(preprocessing);
        var decoder = new ImageDecoder();
        using var engine = new OnnxEngine(graph, OnnxEngineOptions.Default);
        const int PerClass = 8;
        var width = engine.NumFeatures;
        var features = new float[Labels.Length][][];
        for (var label = 0; label < Labels.Length; label++)
        {
            features[label] = [.. Enumerable.Range(0, PerClass).Select(i =>
                engine.ExtractFeatures(preprocessor.DecodeAndPreprocess(decoder, Image(Labels[label], seed: 1000 + (label * 100) + i)), 1))];
        }
        var means = features.SelectMany(rows => Enumerable.Range(0, width).Select(j => rows.Average(r => r[j]))).ToArray();
        var variances = Enumerable.Range(0, width).Select(j => features.Select((rows, c) => rows.Sum(r => Math.Pow(r[j] - means[(c * width) + j], 2))).Sum()
            / (Labels.Length * (PerClass - 1))).ToArray();
        var axes = new float[width * width];
        for (var j = 0; j < width; j++)
        {
            axes[(j * width) + j] = 1;
        }
        var unit = new FeatureStatistics(Labels.Length, width, means, axes, variances, variances.Average(), cutoff: 1);
        var cutoff = 2 * features.SelectMany(rows => rows).Max(r => unit.Distance(r));
        var spec = new OutOfDistributionSpec
        {
            File = "ood.bin",
            Features = width,
            Components = width,
            ResidualVariance = variances.Average(),
            Cutoff = cutoff,
            Images = Labels.Length * PerClass,
        };
        return (new FeatureStatistics(Labels.Length, width, means, axes, variances, spec.ResidualVariance, cutoff), spec);
    }

    private static byte Jitter(byte value, Random random) => (byte)Math.Clamp(value + random.Next(-35, 36), 0, 255);
}
