using System.Globalization;
using Google.Protobuf;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using static ServerlessClassifier.Bench.BenchTable;

namespace ServerlessClassifier.Bench;

/// <summary>
/// What <c>explain=true</c> costs beside a plain classification, in one run on one model: the answer end to end (decode,
/// preprocess, forward pass, and for explain the map, the JPEG overlay and the JSON), the forward pass alone with and
/// without the activation map asked for, and the same graph with the map's output removed (so an unrequested map is
/// shown to cost nothing).
/// </summary>
internal static class ExplainBench
{
    public const string Flag = "--explain-only";

    public static List<ResultRow> Measure(ModelPackage package, ClassificationPipeline pipeline, byte[] photo, int warmup, int runs)
    {
        var rows = new List<ResultRow>();
        if (pipeline.Engine is not OnnxEngine { HasActivationMap: true } engine)
        {
            rows.Add(new ResultRow("2b. explain", "the model has no activation map", pipeline.ActivationMapUnavailable ?? "", "", "", "", ""));
            return rows;
        }
        // Taken in turns, one of each per round, so that the shared machine's load falls on both alike.
        var (plain, explained) = Alternating(() => PredictionDocument.ForResponse(pipeline.Classify(photo, top: 5), "v").ToUtf8Bytes(), () => Explain(pipeline, photo), warmup, runs);
        rows.Add(Row("2b. explain", "224px JPEG -> JSON answer, plain (POST /api/classify, without the batcher)", plain, null, ""));
        rows.Add(Row("2b. explain", "  the same with explain=true (map from the same forward pass, JPEG overlay, grid in the JSON)", explained, plain, ""));
        var prepared = pipeline.Prepare(photo);
        var (_, map) = pipeline.Explain(prepared);
        var overlay = Timing.Of(() => pipeline.ExplanationFor(map, prepared), warmup, runs);
        rows.Add(Row("2b. explain", $"  of which the overlay: render, JPEG, base64 ({pipeline.Manifest.Preprocessing.InputSize} px)", overlay, explained, ""));
        var png = Timing.Of(() => pipeline.RenderOverlayPng(map!, prepared), warmup, runs);
        rows.Add(Row("2b. explain", $"  (the same overlay as PNG, as trainjob classify --explain writes it: {pipeline.RenderOverlayPng(map!, prepared).Length / 1024.0:F0} KB)", png, overlay, ""));
        var (forward, forwardWithMap) = Alternating(() => engine.PredictProbabilities(prepared.Input, 1), () => engine.Explain(prepared.Input), warmup, runs);
        rows.Add(Row("2b. explain", "forward pass, probabilities only (the map output not asked for)", forward, null, ""));
        rows.Add(Row("2b. explain", $"  probabilities, features and the {map!.Side}x{map.Side} map of every class", forwardWithMap, forward, ""));
        var stripped = Onnx.ModelProto.Parser.ParseFrom(package.GetFile(ModelFileRoles.Onnx).ToArray());
        var output = stripped.Graph.Output.Single(o => o.Name == OnnxGraphNames.ActivationMap);
        stripped.Graph.Output.Remove(output);
        using (var withoutMap = new OnnxEngine(stripped.ToByteArray(), OnnxEngineOptions.Default))
        {
            var forwardWithout = Timing.Of(() => withoutMap.PredictProbabilities(prepared.Input, 1), warmup, runs);
            rows.Add(Row("2b. explain", "  probabilities only, the same graph without the map output", forwardWithout, forward, ""));
        }
        var plainBytes = PredictionDocument.ForResponse(pipeline.Classify(photo, top: 5), "v").ToUtf8Bytes().Length;
        rows.Add(new ResultRow("2b. explain", "JSON answer size, explain=true (grid and base64 JPEG)", $"{Explain(pipeline, photo).Length / 1024.0:F1} KB", $"{plainBytes / 1024.0:F1} KB plain", "", "", ""));
        return rows;
    }

    /// <summary>Two timings taken in turns: after the warm-up, each round runs <paramref name="first"/> then <paramref name="second"/>.</summary>
    private static (Timing First, Timing Second) Alternating(Action first, Action second, int warmup, int runs)
    {
        var a = new List<double>(runs);
        var b = new List<double>(runs);
        Timing.Of(() => { first(); second(); }, warmup, 1);
        for (var i = 0; i < runs; i++)
        {
            a.Add(Timing.Of(first, 0, 1).MedianMs);
            b.Add(Timing.Of(second, 0, 1).MedianMs);
        }
        return (Summary(a), Summary(b));
    }

    private static Timing Summary(List<double> samples)
    {
        samples.Sort();
        return new Timing(samples[samples.Count / 2], samples[(int)Math.Ceiling(0.95 * (samples.Count - 1))], samples.Count);
    }

    /// <summary>What the HTTP function does for explain=true (<c>ClassificationService.ExplainAsync</c>), synchronously.</summary>
    private static byte[] Explain(ClassificationPipeline pipeline, byte[] photo)
    {
        var prepared = pipeline.Prepare(photo);
        var (classification, map) = pipeline.Explain(prepared, top: 5);
        return (PredictionDocument.ForResponse(classification, "v") with { Explanation = pipeline.ExplanationFor(map, prepared) }).ToUtf8Bytes();
    }

    /// <summary><c>--explain-only MODEL_FOLDER</c>: these rows alone, for a model folder, printed.</summary>
    public static async Task<int> RunAloneAsync(string folder)
    {
        var package = await ModelPackage.LoadAsync(folder);
        using var pipeline = ClassificationPipeline.CreateServing(package);
        var photo = Photos.Jpeg(224, 224, seed: 1);
        Console.WriteLine($"explain benchmark on {folder} ({package.Manifest.Backbone}, {package.Manifest.Precision}); CPU {CpuFeatures.Describe()}; load average {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        foreach (var r in Measure(package, pipeline, photo, warmup: 10, runs: 60))
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {r.Group} | {r.Measurement} | {r.Value} | {r.Reference} | {r.Ratio} |"));
        }
        Console.WriteLine($"load average at the end {File.ReadAllText("/proc/loadavg").Split(' ')[0]}");
        return 0;
    }
}
