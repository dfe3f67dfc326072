using System.Diagnostics;
using System.Globalization;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Runtime;

namespace ServerlessClassifier.Bench;

/// <summary>
/// How many calibration images the int8 graph needs: a default head-mode model trained (fp32) on N emoji, its fp32 answers
/// on C other emoji computed once, then the int8 graph made from each calibration sample size and judged against those
/// answers on the same C images (accuracy, agreement, drop with its 95 % interval, the step's time). Prints; docs untouched.
/// Usage: <c>ServerlessClassifier.Bench.dll --int8-calibration N C size,size,...</c>
/// </summary>
internal static class Int8CalibrationBench
{
    public const string Flag = "--int8-calibration";

    public static async Task<int> RunAsync(int images, int checkImages, IReadOnlyList<int> sizes)
    {
        TorchRuntime.EnsureInitialized();
        var repository = BenchEnvironment.RepositoryRoot();
        Console.WriteLine($"int8 calibration sizes {string.Join(", ", sizes)} on a head model of {images} emoji, judged on {checkImages} others; CPU {CpuFeatures.Describe()}; {BenchEnvironment.Describe()}");
        Console.WriteLine($"load average before: {File.ReadAllText("/proc/loadavg").Trim()}");
        var emoji = await BenchEmoji.ExtractAsync(repository);
        var train = TrainingBench.PrepareData(emoji, images + checkImages);
        var test = Path.Combine(Path.GetDirectoryName(train)!, $"{Path.GetFileName(train)}-check");
        var folder = Path.Combine(Path.GetTempPath(), $"bench-int8-model-{Guid.NewGuid():N}");
        var files = Directory.GetDirectories(train).SelectMany(Directory.GetFiles).Order(StringComparer.Ordinal).ToList();
        var step = (double)files.Count / checkImages;
        for (var i = 0; i < checkImages; i++)
        {
            var file = files[(int)(i * step)];
            var destination = Path.Combine(test, Path.GetFileName(Path.GetDirectoryName(file)!));
            Directory.CreateDirectory(destination);
            File.Move(file, Path.Combine(destination, Path.GetFileName(file)));
        }
        try
        {
            // Every image of the check folder, whichever split the loader puts it in.
            var checkSet = await ImageFolderDataset.FromDirectoryAsync(test);
            var plan = new HeadPlan { Precision = new PrecisionOptions { Precision = PrecisionChoice.Fp32 } };
            var dataset = await ImageFolderDataset.FromDirectoryAsync(train, TrainingEngine.DatasetOptionsFor(plan));
            using var result = await new TrainingEngine().TrainAsync(plan, dataset, folder);
            var labels = dataset.Labels;
            var fp32 = await File.ReadAllBytesAsync(Path.Combine(folder, ModelCheckpoint.OnnxFileName));
            var preprocessor = new ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage);
            List<LabeledImage> check = [.. checkSet.Train, .. checkSet.Validation];
            int[] truth = [.. check.Select(im => labels.ToList().IndexOf(im.Label))];

            // The fp32 answers, once: log p is a logit vector whose softmax at T = 1 is p.
            var decoder = new ImageDecoder();
            var logits = new double[check.Count * labels.Count];
            using (var engine = new OnnxEngine(fp32, new OnnxEngineOptions { IntraOpThreads = Environment.ProcessorCount }))
            {
                for (var i = 0; i < check.Count; i++)
                {
                    var p = engine.PredictProbabilities(preprocessor.DecodeAndPreprocess(decoder, await check[i].ReadAsync(CancellationToken.None)), 1);
                    for (var c = 0; c < labels.Count; c++)
                    {
                        logits[(i * labels.Count) + c] = Math.Log(Math.Max(p[c], 1e-30));
                    }
                }
            }
            var reference = new HeldOutReference { Images = check, Labels = truth, Logits = logits, Evidence = "held-out" };
            foreach (var size in sizes)
            {
                var clock = Stopwatch.StartNew();
                var graph = await ServingGraphs.CreateAsync(fp32, labels, dataset.Train, reference, preprocessor,
                    new PrecisionOptions { Precision = PrecisionChoice.Auto, CalibrationImages = size, CheckImages = checkImages }, plan.Seed);
                var q = graph.Quantization!;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"RESULT calibration {q.CalibrationImages} images: fp32 {q.Fp32Accuracy:P1}, int8 {q.Int8Accuracy:P1} on {q.ValidationImages} held-out images, drop {q.AccuracyDropPoints:F1} points{ServingGraph.Spread(q)}, agreement {q.Top1Agreement:P1}, {(q.Accepted ? "kept" : "refused")}; {clock.Elapsed.TotalSeconds:F1} s ({string.Join(", ", graph.Timings.Select(t => $"{t.Step} {t.Seconds:F1} s"))}); load {File.ReadAllText("/proc/loadavg").Trim()}"));
            }
            return 0;
        }
        finally
        {
            Directory.Delete(train, recursive: true);
            Directory.Delete(test, recursive: true);
            Directory.Delete(emoji, recursive: true);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }
}
