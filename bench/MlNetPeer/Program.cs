using System.Diagnostics;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Data;

// ML.NET's image-classification recipe with its defaults: LoadImages, ResizeImages(224, 224),
// ExtractPixels, DnnFeaturizeImage (ResNet18), LbfgsMaximumEntropy. Trains on TRAIN/<label>/*,
// scores TEST/<label>/*, prints one JSON line (accuracy, macro-F1, 15-bin ECE, training seconds).
// Usage: ServerlessClassifier.Bench.MlNetPeer TRAIN TEST
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: ServerlessClassifier.Bench.MlNetPeer TRAIN TEST");
    return 2;
}
var ml = new MLContext(seed: 0);
static List<ImageRow> Rows(string root) =>
    [.. Directory.GetDirectories(root).Order(StringComparer.Ordinal)
        .SelectMany(d => Directory.GetFiles(d).Order(StringComparer.Ordinal).Select(f => new ImageRow { ImagePath = f, Label = Path.GetFileName(d) }))];
var train = ml.Data.LoadFromEnumerable(Rows(args[0]));
var test = ml.Data.LoadFromEnumerable(Rows(args[1]));
var pipeline = ml.Transforms.Conversion.MapValueToKey("LabelKey", nameof(ImageRow.Label))
    .Append(ml.Transforms.LoadImages("ImageObject", imageFolder: "", inputColumnName: nameof(ImageRow.ImagePath)))
    .Append(ml.Transforms.ResizeImages("ImageObject", imageWidth: 224, imageHeight: 224, inputColumnName: "ImageObject"))
    .Append(ml.Transforms.ExtractPixels("Pixels", "ImageObject"))
    .Append(ml.Transforms.DnnFeaturizeImage("Features", m => m.ModelSelector.ResNet18(ml, m.OutputColumn, m.InputColumn), "Pixels"))
    .Append(ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy("LabelKey", "Features"))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedText", "PredictedLabel"));
var clock = Stopwatch.StartNew();
var model = pipeline.Fit(train);
var trainSeconds = clock.Elapsed.TotalSeconds;
var scored = ml.Data.CreateEnumerable<Scored>(model.Transform(test), reuseRowObject: false).ToList();

var labels = scored.Select(s => s.Label).Distinct().ToList();
var correct = scored.Count(s => s.Label == s.PredictedText);
var f1 = labels.Select(label =>
{
    var tp = scored.Count(s => s.Label == label && s.PredictedText == label);
    var predicted = scored.Count(s => s.PredictedText == label);
    var actual = scored.Count(s => s.Label == label);
    var precision = predicted == 0 ? 0 : (double)tp / predicted;
    var recall = (double)tp / actual;
    return precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall);
}).Average();
const int bins = 15;
var ece = scored.GroupBy(s => Math.Clamp((int)Math.Ceiling(s.Score.Max() * bins) - 1, 0, bins - 1))
    .Sum(g => Math.Abs(g.Count(s => s.Label == s.PredictedText) - g.Sum(s => (double)s.Score.Max())) / scored.Count);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"{{\"accuracy\": {(double)correct / scored.Count}, \"macroF1\": {f1}, \"ece\": {ece}, \"trainSeconds\": {trainSeconds}}}"));
return 0;

internal sealed class ImageRow
{
    public string ImagePath { get; set; } = "";

    public string Label { get; set; } = "";
}

internal sealed class Scored
{
    public string Label { get; set; } = "";

    public string PredictedText { get; set; } = "";

    [ColumnName("Score")]
    public float[] Score { get; set; } = [];
}
