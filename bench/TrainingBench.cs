using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Engine;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Head-mode training on about 2,000 real images for 10 epochs (the product: frozen-backbone features
/// computed once on the serving engine), against the seed recipe (the PyTorch loop: every epoch decodes
/// every image and runs the frozen backbone in TorchSharp eager before the head step). Runs in a child
/// process so that its peak memory is the training process's own.
/// </summary>
internal static class TrainingBench
{
    public const string Flag = "--train-child";

    private static readonly string[] Splits = ["train", "holdout"];

    /// <summary>Copies up to <paramref name="count"/> images from the emoji data set folders into one ImageFolder root.</summary>
    public static string PrepareData(string emojiDataset, int count)
    {
        var root = Path.Combine(Path.GetTempPath(), $"bench-train-{Guid.NewGuid():N}");
        var byLabel = Splits
            .SelectMany(split => Directory.GetDirectories(Path.Combine(emojiDataset, split)))
            .SelectMany(dir => Directory.GetFiles(dir).Select(f => (Label: Path.GetFileName(dir), File: f)))
            .GroupBy(x => x.Label)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new Queue<string>(g.Select(x => x.File).Order(StringComparer.Ordinal)))
            .ToList();
        var labels = byLabel.Count;
        var copied = 0;
        while (copied < count && byLabel.Any(q => q.Count > 0))
        {
            foreach (var queue in byLabel.Where(q => q.Count > 0))
            {
                if (copied == count)
                {
                    break;
                }
                var file = queue.Dequeue();
                var label = Path.GetFileName(Path.GetDirectoryName(file)!);
                Directory.CreateDirectory(Path.Combine(root, label));
                File.Copy(file, Path.Combine(root, label, $"{copied:D5}-{Path.GetFileName(file)}"));
                copied++;
            }
        }
        Console.WriteLine($"training set: {copied} images in {labels} classes ({root})");
        return root;
    }

    /// <summary>In the child: the product's head mode, 10 epochs, then the seed recipe on a sample; one line of figures.</summary>
    public static async Task<int> RunChildAsync(string root, int seedRecipeSample)
    {
        TorchRuntime.EnsureInitialized();
        var plan = new HeadPlan { Precision = new PrecisionOptions { Precision = PrecisionChoice.Fp32 } };
        var clock = Stopwatch.StartNew();
        var dataset = await ImageFolderDataset.FromDirectoryAsync(root, TrainingEngine.DatasetOptionsFor(plan));
        using var result = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(root, "..", $"bench-model-{Guid.NewGuid():N}"));
        var headTotal = clock.Elapsed.TotalSeconds;
        var features = result.FeatureSeconds ?? double.NaN;
        var images = dataset.Train.Count + dataset.Validation.Count;
        var epochSeconds = result.History.Sum(h => h.Seconds);

        // The seed recipe, per image: decode + preprocess + frozen backbone (TorchSharp eager, no_grad) + head step.
        var pretrained = OnnxResNetImporter.DefaultDirectory;
        using var model = new ImageClassifier(OnnxResNetImporter.LoadBackbone(Path.Combine(pretrained, OnnxResNetImporter.ModelFileName)), HeadSpec.Linear(dataset.Labels.Count));
        var preprocessor = new ImagePreprocessor(OnnxResNetImporter.Preprocessing, OnnxResNetImporter.LoadMeanImage(Path.Combine(pretrained, OnnxResNetImporter.PreprocessFileName)));
        var decoder = new ImageDecoder();
        model.Backbone.eval();
        using var optimizer = optim.AdamW(model.Head.parameters(), lr: 1e-3);
        var sample = dataset.Train.Take(seedRecipeSample).ToList();
        var seedClock = Stopwatch.StartNew();
        foreach (var batch in sample.Chunk(32))
        {
            using var scope = NewDisposeScope();
            var inputs = new List<Tensor>();
            foreach (var image in batch)
            {
                inputs.Add(tensor(preprocessor.DecodeAndPreprocess(decoder, await image.ReadAsync(CancellationToken.None)), [3, 224, 224]));
            }
            Tensor featuresBatch;
            using (no_grad())
            {
                featuresBatch = model.Backbone.forward(stack(inputs));
            }
            optimizer.zero_grad();
            var loss = nn.functional.cross_entropy(model.Head.forward(featuresBatch), tensor(batch.Select(b => (long)dataset.LabelIndex(b.Label)).ToArray()));
            loss.backward();
            optimizer.step();
        }
        var seedPerImage = seedClock.Elapsed.TotalSeconds / sample.Count;
        var seedEstimate = seedPerImage * images * 10;

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"TRAIN images={images} headTotal={headTotal:F2} features={features:F2} epochs={epochSeconds:F3} seedPerImage={seedPerImage:F4} seedEstimate={seedEstimate:F1} sample={sample.Count} accuracy={result.Validation.Accuracy:F4} peakMb={ColdStart.PeakResidentMb():F1}"));
        return 0;
    }

    public static async Task<Dictionary<string, double>> MeasureAsync(string root, int seedRecipeSample)
    {
        var start = new ProcessStartInfo("dotnet", [typeof(TrainingBench).Assembly.Location, Flag, root, seedRecipeSample.ToString(CultureInfo.InvariantCulture)])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start the training process");
        var output = await process.StandardOutput.ReadToEndAsync();
        var errors = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("TRAIN ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"training child failed ({process.ExitCode}): {output}\n{errors}");
        return line.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1)
            .Select(p => p.Split('='))
            .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture), StringComparer.Ordinal);
    }
}
