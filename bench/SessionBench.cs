using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Bench;

/// <summary>What ONNX Runtime spends creating a session for a graph, and what switching its work off would save and cost.</summary>
internal sealed record SessionCosts(double DefaultMs, double LoadingMs, double InitializationMs, double NoOptimizationMs, double NoOptimizationForwardMs, double DefaultForwardMs, double NoPrepackingMs)
{
    /// <summary>Median creation times over <paramref name="repeats"/> sessions of each kind, in this process (files and natives already warm).</summary>
    public static SessionCosts Measure(byte[] onnx, int threads, int repeats)
    {
        var defaultMs = Median(repeats, () => Create(onnx, threads, GraphOptimizationLevel.ORT_ENABLE_ALL, prepacking: true, profile: false).Dispose());
        var noOptimizationMs = Median(repeats, () => Create(onnx, threads, GraphOptimizationLevel.ORT_DISABLE_ALL, prepacking: true, profile: false).Dispose());
        var noPrepackingMs = Median(repeats, () => Create(onnx, threads, GraphOptimizationLevel.ORT_ENABLE_ALL, prepacking: false, profile: false).Dispose());
        double loading = 0, initialization = 0;
        using (var profiled = Create(onnx, threads, GraphOptimizationLevel.ORT_ENABLE_ALL, prepacking: true, profile: true))
        {
            var path = profiled.EndProfiling();
            using (var events = JsonDocument.Parse(File.ReadAllBytes(path)))
            {
                foreach (var e in events.RootElement.EnumerateArray().Where(e => e.GetProperty("cat").GetString() == "Session"))
                {
                    var name = e.GetProperty("name").GetString();
                    var ms = e.GetProperty("dur").GetInt64() / 1000.0;
                    loading += name is "model_loading_array" or "model_loading_uri" ? ms : 0;
                    initialization += name == "session_initialization" ? ms : 0;
                }
            }
            File.Delete(path);
        }
        using var optimized = Create(onnx, threads, GraphOptimizationLevel.ORT_ENABLE_ALL, prepacking: true, profile: false);
        using var plain = Create(onnx, threads, GraphOptimizationLevel.ORT_DISABLE_ALL, prepacking: true, profile: false);
        return new SessionCosts(defaultMs, loading, initialization, noOptimizationMs, Forward(plain), Forward(optimized), noPrepackingMs);
    }

    private static InferenceSession Create(byte[] onnx, int threads, GraphOptimizationLevel level, bool prepacking, bool profile)
    {
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = level,
            EnableProfiling = profile,
            ProfileOutputPathPrefix = Path.Combine(Path.GetTempPath(), $"bench-ort-profile-{Guid.NewGuid():N}"),
        };
        if (!prepacking)
        {
            options.AddSessionConfigEntry("session.disable_prepacking", "1");
        }
        return new InferenceSession(onnx, options);
    }

    private static double Forward(InferenceSession session)
    {
        var input = new float[3 * 224 * 224];
        using var value = OrtValue.CreateTensorValueFromMemory(input, [1, 3, 224, 224]);
        using var runOptions = new RunOptions();
        return Median(15, () =>
        {
            using var _ = session.Run(runOptions, [OnnxGraphNames.Input], [value], [OnnxGraphNames.Probabilities]);
        }, warmup: 3);
    }

    private static double Median(int repeats, Action action, int warmup = 1)
    {
        for (var i = 0; i < warmup; i++)
        {
            action();
        }
        var samples = new List<double>();
        for (var i = 0; i < repeats; i++)
        {
            var clock = Stopwatch.StartNew();
            action();
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }
        samples.Sort();
        return samples[samples.Count / 2];
    }
}
