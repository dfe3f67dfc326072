using System.Text.Json.Nodes;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.OutOfDistribution;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// A real, small, distinguishable serving model, built once: torchvision's ResNet-18 architecture (random
/// init, 64 px input), whose linear head is fitted on the cached backbone features of synthetic red, green and
/// blue images (a few hundred Adam steps on 24 feature vectors), then saved with
/// <see cref="ModelCheckpoint.SaveForServing"/> (weights + verified model.onnx + manifest). A second folder has
/// the same files with the labels listed in reverse, so a hot swap to it is visible in every answer.
/// </summary>
public sealed class ServingModelFixture : IDisposable
{
    public static readonly string[] Labels = ["red", "green", "blue"];

    private static readonly Rgb24[] Colours = [new(220, 30, 30), new(30, 200, 40), new(30, 40, 220)];

    public ServingModelFixture()
    {
        TorchRuntime.EnsureInitialized();
        Root = Path.Combine(Path.GetTempPath(), $"functions-tests-{Guid.NewGuid():N}");
        Folder = Path.Combine(Root, "v1");
        ReversedFolder = Path.Combine(Root, "reversed");
        var preprocessing = PreprocessingConfig.TorchVision with { InputSize = 64, ResizeSize = 64 };
        var preprocessor = new ImagePreprocessor(preprocessing);
        var decoder = new ImageDecoder();

        var inputs = new List<float[]>();
        var targets = new List<long>();
        for (var label = 0; label < Labels.Length; label++)
        {
            for (var i = 0; i < 8; i++)
            {
                using var image = decoder.Decode(Image(Labels[label], seed: 1000 + (label * 100) + i));
                inputs.Add(preprocessor.Preprocess(image));
                targets.Add(label);
            }
        }

        manual_seed(42);
        using var model = new ImageClassifier(BackboneCatalog.Create("resnet18"), HeadSpec.Linear(Labels.Length));
        model.eval();
        using (var scope = NewDisposeScope())
        {
            using var batch = tensor(inputs.SelectMany(x => x).ToArray(), [inputs.Count, 3, 64, 64]);
            Tensor features;
            using (no_grad())
            {
                features = model.Backbone.call(batch);
                // Scale-free fitting: the random backbone's features are large; the head learns on them as they are.
            }
            using var target = tensor(targets.ToArray());
            using var optimizer = optim.Adam(model.Head.parameters(), lr: 0.01);
            for (var step = 0; step < 300; step++)
            {
                optimizer.zero_grad();
                using var loss = nn.functional.cross_entropy(model.Head.call(features), target);
                loss.backward();
                optimizer.step();
            }
        }

        var manifest = new ModelManifest
        {
            Backbone = "resnet18",
            BackboneSource = "random init (test model)",
            Head = HeadSpec.Linear(Labels.Length),
            Labels = Labels,
            Preprocessing = preprocessing,
            ConfidenceThreshold = 0.5,
            Metrics = new ValidationMetrics { Accuracy = 1, Samples = inputs.Count },
        };
        ModelCheckpoint.SaveForServing(model, manifest, Folder, [.. inputs.Take(4)], meanImage: null);

        // The same model with out-of-distribution statistics of its 24 images' features (the trainer's fit).
        OodFolder = Path.Combine(Root, "ood");
        float[] allFeatures;
        using (var scope = NewDisposeScope())
        using (no_grad())
        {
            allFeatures = model.Backbone.call(tensor(inputs.SelectMany(x => x).ToArray(), [inputs.Count, 3, 64, 64])).data<float>().ToArray();
        }
        var ood = FeatureStatisticsFit.Fit(allFeatures, [.. targets.Select(t => (int)t)], Labels.Length, allFeatures.Length / inputs.Count, seed: 42);
        ModelCheckpoint.SaveForServing(model, manifest with { OutOfDistribution = ood.Spec }, OodFolder, [.. inputs.Take(4)], meanImage: null, ood.Statistics);

        Directory.CreateDirectory(ReversedFolder);
        foreach (var file in Directory.GetFiles(Folder))
        {
            File.Copy(file, Path.Combine(ReversedFolder, Path.GetFileName(file)));
        }
        var manifestPath = Path.Combine(ReversedFolder, ModelManifest.FileName);
        var json = JsonNode.Parse(File.ReadAllText(manifestPath))!;
        json["labels"] = new JsonArray([.. Labels.Reverse().Select(l => JsonValue.Create(l))]);
        File.WriteAllText(manifestPath, json.ToJsonString());
    }

    public string Root { get; }

    /// <summary>
    /// A models container with <see cref="Folder"/> published as version <c>v1</c> and live, shared by the tests
    /// that only read it (publishing and loading a 90 MB model per test would dominate the run).
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

    /// <summary>The model: red, green, blue.</summary>
    public string Folder { get; }

    /// <summary>The same weights with the labels reversed: a red image is called "blue".</summary>
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

    private static byte Jitter(byte value, Random random) => (byte)Math.Clamp(value + random.Next(-35, 36), 0, 255);
}
