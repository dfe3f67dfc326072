using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>ONNX Runtime thread settings.</summary>
public sealed record OnnxEngineOptions
{
    /// <summary>
    /// Threads one forward pass may use. The default, the machine's core count capped at 2, is right
    /// for a Functions instance (Flex Consumption gives 1-2 vCPUs); more threads than cores only
    /// adds contention when concurrent invocations run.
    /// </summary>
    public int IntraOpThreads { get; init; } = Math.Clamp(Environment.ProcessorCount, 1, 2);

    /// <summary>Threads across independent graph branches; ResNets are a chain, so 1.</summary>
    public int InterOpThreads { get; init; } = 1;

    public static OnnxEngineOptions Default { get; } = new();
}

/// <summary>
/// The serving engine: one ONNX Runtime <see cref="InferenceSession"/> per model, created once and
/// shared by concurrent callers (Run is thread-safe). Runs graphs with the names in <see cref="OnnxGraphNames"/>.
/// </summary>
public sealed class OnnxEngine : IClassifierEngine
{
    private readonly InferenceSession session;
    private readonly RunOptions runOptions = new();

    public OnnxEngine(byte[] onnx, OnnxEngineOptions options)
        : this(options, sessionOptions => new InferenceSession(onnx ?? throw new ArgumentNullException(nameof(onnx)), sessionOptions))
    {
    }

    /// <summary>
    /// A session over a graph file, read by ONNX Runtime itself: no copy of the graph passes through the managed heap (an
    /// fp32 ResNet-18 is 45 to 64 MB). The caller has verified the file (see <c>LocalModelCache</c>).
    /// </summary>
    /// <param name="onnxPath">The verified graph file.</param>
    /// <param name="options">Thread settings.</param>
    /// <param name="keepOptimizedGraph">
    /// Create the session from the optimised graph saved beside the file by an earlier session on this runtime and CPU, and save
    /// it when there is none (<see cref="OptimizedGraphFile"/>): for files in the app's own local model cache.
    /// </param>
    public OnnxEngine(string onnxPath, OnnxEngineOptions options, bool keepOptimizedGraph = false)
        : this(options, sessionOptions =>
        {
            ArgumentNullException.ThrowIfNull(onnxPath);
            return keepOptimizedGraph ? OptimizedGraphFile.CreateSession(onnxPath, sessionOptions) : (new InferenceSession(onnxPath, sessionOptions), OptimizedGraphUse.None);
        })
    {
    }

    private OnnxEngine(OnnxEngineOptions options, Func<SessionOptions, InferenceSession> create)
        : this(options, sessionOptions => (create(sessionOptions), OptimizedGraphUse.None))
    {
    }

    private OnnxEngine(OnnxEngineOptions options, Func<SessionOptions, (InferenceSession, OptimizedGraphUse)> create)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var sessionOptions = new SessionOptions
        {
            IntraOpNumThreads = options.IntraOpThreads,
            InterOpNumThreads = options.InterOpThreads,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        try
        {
            (session, OptimizedGraph) = create(sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new InvalidDataException($"The ONNX graph could not be loaded: {e.Message}", e);
        }
        var input = session.InputMetadata.TryGetValue(OnnxGraphNames.Input, out var metadata)
            ? metadata
            : throw new InvalidDataException($"The ONNX graph has no input named {OnnxGraphNames.Input}.");
        InputSize = input.Dimensions[^1];
        NumClasses = session.OutputMetadata.TryGetValue(OnnxGraphNames.Probabilities, out var output)
            ? output.Dimensions[^1]
            : throw new InvalidDataException($"The ONNX graph has no output named {OnnxGraphNames.Probabilities}.");
        NumFeatures = session.OutputMetadata.TryGetValue(OnnxGraphNames.Features, out var features) ? features.Dimensions[^1] : 0;
        HasActivationMap = session.OutputMetadata.ContainsKey(OnnxGraphNames.ActivationMap);
    }

    /// <summary>Whether the session came from, or saved, an optimised graph kept beside its graph file.</summary>
    public OptimizedGraphUse OptimizedGraph { get; }

    /// <summary>True when the graph has the <see cref="OnnxGraphNames.ActivationMap"/> output (ResNet and DenseNet models exported since it exists).</summary>
    public bool HasActivationMap { get; }

    public string Name => "onnxruntime";

    public int NumClasses { get; }

    public int InputSize { get; }

    /// <summary>Width of the <c>features</c> output (the pooled backbone), 0 if the graph has none.</summary>
    public int NumFeatures { get; }

    public float[] PredictProbabilities(ReadOnlySpan<float> input, int batchSize) => Run(input, batchSize, OnnxGraphNames.Probabilities)[0];

    /// <summary>Probabilities and, when asked and the graph has them, the features, from one forward pass.</summary>
    public (float[] Probabilities, float[]? Features) Predict(ReadOnlySpan<float> input, int batchSize, bool withFeatures)
    {
        if (!withFeatures || NumFeatures == 0)
        {
            return (PredictProbabilities(input, batchSize), null);
        }
        var outputs = Run(input, batchSize, OnnxGraphNames.Probabilities, OnnxGraphNames.Features);
        return (outputs[0], outputs[1]);
    }

    /// <summary>The pooled backbone features for a batch (batchSize x NumFeatures), e.g. to train a head on a frozen backbone.</summary>
    public float[] ExtractFeatures(ReadOnlySpan<float> input, int batchSize) => Run(input, batchSize, OnnxGraphNames.Features)[0];

    /// <summary>
    /// One image's probabilities, features (when the graph has them) and activation map (classes x side x side, row by
    /// row per class) from one forward pass; the graph must have the map (<see cref="HasActivationMap"/>).
    /// </summary>
    public (float[] Probabilities, float[]? Features, float[] Map, int Side) Explain(ReadOnlySpan<float> input)
    {
        if (!HasActivationMap)
        {
            throw new InvalidOperationException("The ONNX graph has no activation map output.");
        }
        string[] names = NumFeatures > 0
            ? [OnnxGraphNames.Probabilities, OnnxGraphNames.ActivationMap, OnnxGraphNames.Features]
            : [OnnxGraphNames.Probabilities, OnnxGraphNames.ActivationMap];
        var (outputs, shapes) = RunWithShapes(input, 1, names);
        var side = (int)shapes[1][^1];
        if (shapes[1].Length != 4 || shapes[1][^2] != side || shapes[1][1] != NumClasses)
        {
            throw new InvalidDataException($"The activation map has shape [{string.Join(", ", shapes[1])}]; expected [1, {NumClasses}, side, side].");
        }
        return (outputs[0], outputs.Length > 2 ? outputs[2] : null, outputs[1], side);
    }

    public void Dispose()
    {
        session.Dispose();
        runOptions.Dispose();
    }

    private float[][] Run(ReadOnlySpan<float> input, int batchSize, params string[] outputNames) => RunWithShapes(input, batchSize, outputNames).Outputs;

    private (float[][] Outputs, long[][] Shapes) RunWithShapes(ReadOnlySpan<float> input, int batchSize, params string[] outputNames)
    {
        var imageSize = 3 * InputSize * InputSize;
        if (batchSize < 1 || input.Length != batchSize * imageSize)
        {
            throw new ArgumentException($"Expected {batchSize} x {imageSize} floats, got {input.Length}.", nameof(input));
        }
        // OrtValue over the caller's memory, pinned for the call: no copy of the batch, and the
        // output is copied once, out of ONNX Runtime's buffer.
        long[] shape = [batchSize, 3, InputSize, InputSize];
        unsafe
        {
            fixed (float* data = input)
            {
                using var value = OrtValue.CreateTensorValueWithData(
                    OrtMemoryInfo.DefaultInstance, TensorElementType.Float, shape, (IntPtr)data, (long)input.Length * sizeof(float));
                using var results = session.Run(runOptions, [OnnxGraphNames.Input], [value], outputNames);
                return ([.. results.Select(r => r.GetTensorDataAsSpan<float>().ToArray())], [.. results.Select(r => r.GetTensorTypeAndShape().Shape)]);
            }
        }
    }
}
