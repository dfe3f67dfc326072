using System.Diagnostics;
using TorchSharp.PyBridge;
using ServerlessClassifier.ModelCore.Export;
using ServerlessClassifier.ModelCore.Export.Quantization;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Results;
using ServerlessClassifier.ModelCore.Plans;
using ServerlessClassifier.ModelCore.Engine;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>Preprocessed held-out images of a set (the product's decoder and preprocessing) and their label indices.</summary>
internal sealed record TestImages(IReadOnlyList<string> Labels, float[] Inputs, int[] Truth, int InputLength)
{
    public static TestImages Load(string folder, IReadOnlyList<string> labels, ImagePreprocessor preprocessor)
    {
        var decoder = new ImageDecoder();
        var inputs = new List<float>();
        var truth = new List<int>();
        foreach (var (label, index) in labels.Select((l, i) => (l, i)))
        {
            foreach (var file in Directory.GetFiles(Path.Combine(folder, label)).Order(StringComparer.Ordinal))
            {
                inputs.AddRange(preprocessor.DecodeAndPreprocess(decoder, File.ReadAllBytes(file)));
                truth.Add(index);
            }
        }
        return new TestImages(labels, [.. inputs], [.. truth], preprocessor.InputLength);
    }
}

/// <summary>The product's training as a user runs it (the engine on the training folder), scored on the test images through the fp32 ONNX graph it packaged, as serving runs it.</summary>
internal static class ProductRuns
{
    /// <param name="asPlanned">Train with the plan's precision (the int8 row: <c>--precision auto</c>); otherwise the fp32 graph.</param>
    public static async Task<(Score Score, TrainingResult Result)> TrainAndScoreAsync(string contender, string trainFolder, TrainingPlan plan, Func<TrainingResult, TestImages> test,
        bool asPlanned = false)
    {
        var clock = Stopwatch.StartNew();
        if (!asPlanned)
        {
            plan = plan with { Precision = plan.Precision with { Precision = PrecisionChoice.Fp32 } };
        }
        var dataset = await ImageFolderDataset.FromDirectoryAsync(trainFolder, TrainingEngine.DatasetOptionsFor(plan));
        // The engine's messages and epoch lines, as the CLI prints them.
        var progress = new Progress<TrainingProgress>(p =>
        {
            if (p.Phase == TrainingPhase.Info || p.Phase == TrainingPhase.EpochCompleted)
            {
                Console.WriteLine(p.Metrics is { } e
                    ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"      epoch {e.Epoch}: train loss {e.TrainLoss:F3} acc {e.TrainAccuracy:P1}; val loss {e.ValidationLoss:F3} (calibrated {e.CalibratedValidationLoss:F3}) acc {e.ValidationAccuracy:P1}; {e.Seconds:F1} s, {e.ImagesPerSecond:F1} images/s")
                    : $"      {p.Message}");
            }
        });
        var result = await new TrainingEngine().TrainAsync(plan, dataset, Path.Combine(Path.GetTempPath(), $"bench-model-{Guid.NewGuid():N}"), new TrainingRun { Progress = progress });
        var seconds = clock.Elapsed.TotalSeconds;
        var images = test(result);
        var probabilities = Classify(await File.ReadAllBytesAsync(Path.Combine(result.Folder, ModelCheckpoint.OnnxFileName)), images);
        var probe = result.Manifest.Training?.Probe;
        var epochs = result.Plan is EpochPlan
            ? string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"best epoch {result.BestEpoch} of {result.History.Count}{(result.History.Any(h => h.ImagesPerSecond > 0) ? $"; {result.History.Average(h => h.ImagesPerSecond):F1} img/s per epoch" : "")}")
            : null;
        var fit = probe is null
            ? null
            : string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{(probe.Features is { } features ? $"{features}{(probe.FlipFeatures ? " + flip" : "")}, " : "")}L2 {probe.Lambda:G2}, T {result.Manifest.Training!.Calibration!.Temperature:F2}, {probe.Rows} rows{(probe.ClassWeighted ? ", class-weighted" : "")}; fit {probe.Seconds:F1} s");
        var note = string.Join("; ", new[] { epochs, fit }.Where(n => n is not null));
        return (Score.Of(contender, images.Labels, probabilities, images.Truth, seconds, note), result);
    }

    /// <summary>
    /// <c>train --mode head</c> with its default <c>--precision auto</c>, as a user runs it: trained again (the same data and
    /// seed give the same fp32 model as <paramref name="fp32"/>'s), the int8 graph made and checked by the engine (on
    /// out-of-fold images, against the fp32 answers training computed), and the graph it serves scored on the test images,
    /// with its top-1 agreement with the fp32 graph there. Train seconds: the whole run, the check included.
    /// </summary>
    /// <param name="precision">The precision settings: the defaults, or another choice of features (<see cref="PrecisionOptions.Int8Features"/>).</param>
    public static async Task<Score> AutoScoreAsync(string contender, string trainFolder, TrainingResult fp32, TestImages images, PrecisionOptions? precision = null)
    {
        var (score, result) = await TrainAndScoreAsync(contender, trainFolder, fp32.Plan with { Precision = precision ?? new PrecisionOptions() }, _ => images, asPlanned: true);
        using (result)
        {
            var served = await File.ReadAllBytesAsync(Path.Combine(result.Folder, ModelCheckpoint.OnnxFileName));
            var reference = Classify(await File.ReadAllBytesAsync(Path.Combine(fp32.Folder, ModelCheckpoint.OnnxFileName)), images);
            var answers = Classify(served, images);
            var classes = images.Labels.Count;
            var agreeing = Enumerable.Range(0, images.Truth.Length).Count(i => ArgMax(answers, i, classes) == ArgMax(reference, i, classes));
            var check = result.Manifest.Quantization!;
            var note = string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"head on {result.Manifest.Training?.Probe?.FeaturePrecision} features; int8 check {(check.Accepted ? "passed (int8 served)" : "FAILED (fp32 served)")}: {check.AccuracyDropPoints:+0.0;-0.0} pt (95 % {check.AccuracyDropLowPoints:+0.0;-0.0} to {check.AccuracyDropHighPoints:+0.0;-0.0}), " +
                $"agreement {check.Top1Agreement:P1} on {check.ValidationImages} {check.Evidence} images; {check.WeightBits}-bit weights, float: stem{string.Concat(check.FloatLayers?.Select(l => $", {l.Output} ({l.ErrorShare:P0})") ?? [])}; " +
                $"test agreement with fp32 {(double)agreeing / images.Truth.Length:P1}; {check.Int8Bytes / 1048576.0:F1} MB");
            return score with { Note = note };
        }
    }

    private static float[] Classify(byte[] onnx, TestImages images)
    {
        using var engine = new OnnxEngine(onnx, OnnxEngineOptions.Default);
        var probabilities = new List<float>();
        const int batch = 16;
        var count = images.Truth.Length;
        for (var start = 0; start < count; start += batch)
        {
            var n = Math.Min(batch, count - start);
            probabilities.AddRange(engine.PredictProbabilities(images.Inputs.AsSpan(start * images.InputLength, n * images.InputLength), n));
        }
        return [.. probabilities];
    }

    private static int ArgMax(float[] probabilities, int row, int classes)
    {
        var best = 0;
        for (var c = 1; c < classes; c++)
        {
            best = probabilities[(row * classes) + c] > probabilities[(row * classes) + best] ? c : best;
        }
        return best;
    }

    /// <summary>
    /// Files for the PyTorch peer: the imported backbone's weights (safetensors, TorchSharp names), the
    /// preprocessed inputs of every training and test image (float32, N x 3 x 224 x 224) with their
    /// labels, and the product's TorchSharp features of the first training images for a parity check.
    /// </summary>
    public static void WritePeerInputs(string work, TrainingResult result, string trainFolder, TestImages test)
    {
        Directory.CreateDirectory(work);
        result.Model.Backbone.save_safetensors(Path.Combine(work, "backbone.safetensors"));
        var preprocessor = new ImagePreprocessor(result.Manifest.Preprocessing, result.MeanImage);
        var train = TestImages.Load(trainFolder, test.Labels, preprocessor);
        WriteFloats(Path.Combine(work, "train.f32"), train.Inputs);
        File.WriteAllText(Path.Combine(work, "train.labels"), string.Join(' ', train.Truth));
        WriteFloats(Path.Combine(work, "test.f32"), test.Inputs);
        File.WriteAllText(Path.Combine(work, "test.labels"), string.Join(' ', test.Truth));
        var size = result.Manifest.Preprocessing.InputSize;
        using (inference_mode())
        using (var scope = NewDisposeScope())
        {
            var first = tensor(train.Inputs.AsSpan(0, 4 * train.InputLength).ToArray(), [4, 3, size, size]);
            // The last stage's pooled features come first, whatever PooledStages is: the script computes those.
            var lastStage = 512 * ((ServerlessClassifier.ModelCore.Backbones.TorchVisionResNet)result.Model.Backbone).Architecture.Expansion;
            WriteFloats(Path.Combine(work, "parity.f32"), result.Model.Backbone.call(first).narrow(1, 0, lastStage).contiguous().data<float>().ToArray());
        }
        File.WriteAllText(Path.Combine(work, "meta.json"),
            $"{{\"inputSize\": {size}, \"classes\": {test.Labels.Count}, \"threads\": {OnnxEngineOptions.Default.IntraOpThreads}}}");
    }

    private static void WriteFloats(string path, float[] values)
    {
        using var file = File.Create(path);
        file.Write(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()));
    }
}
