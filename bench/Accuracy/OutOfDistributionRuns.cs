using System.Globalization;
using System.Text;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>
/// How many images of classes the model was never trained on the softmax threshold alone lets through, against the
/// product's rule (threshold OR out-of-distribution score), at the same false-rejection rate on in-class images.
/// Three rotations over the nine emoji categories: train head mode (the default probe) on six (Twitter's images of
/// a seeded 60 % of each category's emoji, at most 60), test on the held-out 40 % (at most 30 a category) of all
/// nine: the six are in-class, the other three are out-of-class.
/// </summary>
internal static class OutOfDistributionRuns
{
    private static readonly string[] Categories =
        ["Activities", "Animals & Nature", "Flags", "Food & Drink", "Objects", "People & Body", "Smileys & Emotion", "Symbols", "Travel & Places"];

    public static async Task<string> RunAsync(string repository, string work)
    {
        var split = Split(repository);
        var table = new StringBuilder();
        table.AppendLine("| Held-out categories | In-class / out-of-class test images | Rule | In-class rejected | Out-of-class let through | Recall of unknown |");
        table.AppendLine("|---|---:|---|---:|---:|---:|");
        for (var rotation = 0; rotation < 3; rotation++)
        {
            var unseen = Categories.Where((_, i) => i % 3 == rotation).ToArray();
            var seen = Categories.Except(unseen).ToArray();
            var root = Path.Combine(work, $"ood-{rotation}");
            var train = Path.Combine(root, "train");
            Directory.CreateDirectory(root);
            foreach (var category in seen)
            {
                Copy(split[category].Train.Take(60), Path.Combine(train, Folder(category)));
            }
            var plan = new HeadPlan { Precision = new PrecisionOptions { Precision = PrecisionChoice.Fp32 } };
            var dataset = await ImageFolderDataset.FromDirectoryAsync(train, TrainingEngine.DatasetOptionsFor(plan));
            using var result = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(root, "model"));
            var statistics = result.OutOfDistribution ?? throw new InvalidOperationException("A multi-class model has out-of-distribution statistics.");
            var preprocessor = new ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage);
            using var engine = new OnnxEngine(await File.ReadAllBytesAsync(Path.Combine(result.Folder, ModelCheckpoint.OnnxFileName)), OnnxEngineOptions.Default);
            var inClass = Score(engine, preprocessor, statistics, seen.SelectMany(c => split[c].Test.Take(30)));
            var outOfClass = Score(engine, preprocessor, statistics, unseen.SelectMany(c => split[c].Test.Take(30)));
            var threshold = result.Manifest.ConfidenceThreshold;

            bool Product((double Confidence, double Ood) s) => s.Confidence < threshold || s.Ood > 1;
            var productRejected = Share(inClass, Product);
            // The softmax threshold that rejects exactly as many in-class images as the product's rule does.
            var matched = FrrThreshold(inClass.Select(s => s.Confidence).ToArray(), productRejected);
            var name = string.Join(", ", unseen);
            void Row(string rule, Func<(double Confidence, double Ood), bool> unknown) => table.AppendLine(string.Create(CultureInfo.InvariantCulture,
                $"| {name} | {inClass.Count} / {outOfClass.Count} | {rule} | {Share(inClass, unknown):P1} | {outOfClass.Count(s => !unknown(s))} ({1 - Share(outOfClass, unknown):P1}) | {Share(outOfClass, unknown):P1} |"));
            Row(string.Create(CultureInfo.InvariantCulture, $"softmax threshold {threshold:0.000} alone (the manifest's)"), s => s.Confidence < threshold);
            Row(string.Create(CultureInfo.InvariantCulture, $"softmax threshold {matched:0.000} alone (same in-class rejection as the product)"), s => s.Confidence < matched);
            Row("out-of-distribution score > 1 alone", s => s.Ood > 1);
            Row(string.Create(CultureInfo.InvariantCulture, $"product: threshold {threshold:0.000} OR score > 1"), Product);
            Console.WriteLine($"   rotation {rotation + 1}/3 (unseen: {name}) done");
        }
        return table.ToString();
    }

    private static List<(double Confidence, double Ood)> Score(OnnxEngine engine, ImagePreprocessor preprocessor, ModelCore.Ood.FeatureStatistics statistics, IEnumerable<string> files)
    {
        var decoder = new ImageDecoder();
        var scores = new List<(double, double)>();
        foreach (var file in files)
        {
            var input = preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(file));
            var (probabilities, features) = engine.Predict(input, 1, withFeatures: true);
            scores.Add((probabilities.Max(), statistics.Score(features)));
        }
        return scores;
    }

    private static double Share(List<(double Confidence, double Ood)> scores, Func<(double Confidence, double Ood), bool> unknown) =>
        scores.Count == 0 ? 0 : scores.Count(unknown) / (double)scores.Count;

    /// <summary>The confidence below which a share <paramref name="rejected"/> of <paramref name="confidences"/> lie.</summary>
    private static double FrrThreshold(double[] confidences, double rejected)
    {
        var sorted = confidences.Order().ToArray();
        var count = (int)Math.Round(rejected * sorted.Length);
        return count == 0 ? sorted[0] : count >= sorted.Length ? sorted[^1] + 1e-9 : (sorted[count - 1] + sorted[count]) / 2;
    }

    private static string Folder(string category) => category.Split(' ')[0].ToLowerInvariant();

    private static void Copy(IEnumerable<string> files, string folder)
    {
        Directory.CreateDirectory(folder);
        foreach (var file in files)
        {
            File.Copy(file, Path.Combine(folder, Path.GetFileName(file)), overwrite: true);
        }
    }

    /// <summary>Each category's Twitter emoji, split 60/40 with a fixed seed into training and test emoji (no emoji in both).</summary>
    private static Dictionary<string, (List<string> Train, List<string> Test)> Split(string repository)
    {
        var package = Path.Combine(repository, "node_modules", "emoji-datasource-twitter");
        using var catalog = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(package, "emoji.json")));
        var emoji = catalog.RootElement.EnumerateArray().Where(e => e.GetProperty("has_img_twitter").GetBoolean())
            .Select(e => (Image: e.GetProperty("image").GetString()!, Category: e.GetProperty("category").GetString()!)).ToList();
        var random = new Random(2026);
        var split = new Dictionary<string, (List<string>, List<string>)>();
        foreach (var category in Categories)
        {
            var images = emoji.Where(e => e.Category == category).Select(e => Path.Combine(package, "img", "twitter", "64", e.Image)).Order(StringComparer.Ordinal).ToArray();
            random.Shuffle(images);
            var cut = (int)(images.Length * 0.6);
            split[category] = ([.. images.Take(cut)], [.. images.Skip(cut)]);
        }
        return split;
    }
}
