using Google.Protobuf;
using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Models;

namespace ServerlessClassifier.ModelCore.Export;

/// <summary>The result of an export whose graph was checked against TorchSharp.</summary>
/// <param name="Onnx">The serialized ONNX model.</param>
/// <param name="MaxAbsDifference">Largest |p_onnx - p_torch| over the verification inputs.</param>
/// <param name="Samples">How many inputs were compared.</param>
public sealed record VerifiedExport(byte[] Onnx, double MaxAbsDifference, int Samples);

/// <summary>An exported graph whose outputs differ from TorchSharp's by more than the tolerance.</summary>
public sealed class OnnxExportException(string message) : Exception(message);

/// <summary>
/// Exports a classifier (any ResNet backbone this library builds, either padding style, either head)
/// to one ONNX graph: backbone, head and softmax, BatchNorm in inference form, a dynamic batch
/// dimension. Input <c>input</c> (N, 3, S, S), already preprocessed as the manifest says; outputs
/// <c>probabilities</c> (N, classes) and <c>features</c> (N, NumFeatures), the pooled backbone output,
/// so the frozen backbone can also run on the serving engine.
/// </summary>
public static class OnnxExport
{
    public const string InputName = OnnxGraphNames.Input;
    public const string ProbabilitiesName = OnnxGraphNames.Probabilities;
    public const string FeaturesName = OnnxGraphNames.Features;
    public const double DefaultTolerance = 1e-4;

    /// <summary>Output of <see cref="ExportPrefix"/>: the last frozen stage's feature map (N, C, H, W).</summary>
    public const string PrefixName = "prefix";

    /// <summary>Builds the graph from the module structure and its current weights.</summary>
    public static byte[] Export(ImageClassifier model, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        var resnet = ResNet(model);
        var (graph, stageOutputs) = Stages(model, resnet, resnet.StageNames.Count);
        // The pooled outputs of the last PooledStages stages, last stage first (the head reads them all).
        var pooled = stageOutputs.Skip(1).Reverse().Take(model.Backbone.PooledStages)
            .Select(s => graph.Unary("Flatten", graph.Unary("GlobalAveragePool", s), OnnxGraphBuilder.Int("axis", 1))).ToList();
        var features = graph.Concat(pooled, axis: 1);
        var logits = model.HeadSpec.Kind switch
        {
            HeadKind.Linear => graph.Linear(features, "head.fc"),
            HeadKind.Mlp => graph.Linear(graph.Unary("Relu", graph.Linear(features, "head.fc1")), "head.fc2"), // dropout is the identity at inference
            _ => throw new NotSupportedException($"Head kind {model.HeadSpec.Kind} cannot be exported."),
        };
        var probabilities = graph.Unary("Softmax", logits, OnnxGraphBuilder.Int("axis", 1));
        var proto = graph.Build(InputName, inputSize,
            [(probabilities, ProbabilitiesName, [model.NumClasses]), (features, FeaturesName, [model.Backbone.NumFeatures])]);
        return proto.ToByteArray();
    }

    /// <summary>
    /// The frozen prefix of a fine-tune: the stem and the first <paramref name="stages"/> stages, one output
    /// <see cref="PrefixName"/> (N, C, H, W), the same function as <c>TorchVisionResNet.ForwardPrefix</c>.
    /// </summary>
    public static byte[] ExportPrefix(ImageClassifier model, int inputSize, int stages)
    {
        ArgumentNullException.ThrowIfNull(model);
        var (graph, stageOutputs) = Stages(model, ResNet(model), stages);
        return graph.Build(InputName, inputSize, [(stageOutputs[^1], PrefixName, [null, null, null])]).ToByteArray();
    }

    private static TorchVisionResNet ResNet(ImageClassifier model) => model.Backbone as TorchVisionResNet
        ?? throw new NotSupportedException($"Export supports ResNet backbones; got {model.Backbone.GetType().Name}.");

    /// <summary>The stem and the first <paramref name="stages"/> stages; the outputs of the stem (first) and of each stage.</summary>
    private static (OnnxGraphBuilder Graph, List<string> Outputs) Stages(ImageClassifier model, TorchVisionResNet resnet, int stages)
    {
        var state = model.state_dict();
        var architecture = resnet.Architecture;
        var graph = new OnnxGraphBuilder(state);
        var x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(InputName, "backbone.conv1", 2, Pads(architecture, 7, 2)), "backbone.bn1"));
        x = graph.MaxPool(x, 3, 2, Pads(architecture, 3, 2));
        var outputs = new List<string> { x };
        for (var stage = 1; stage <= stages; stage++)
        {
            for (var block = 0; block < architecture.Layers[stage - 1]; block++)
            {
                var stride = stage > 1 && block == 0 ? 2 : 1;
                x = Block(graph, x, $"backbone.layer{stage}.{block}", architecture, stride, state.ContainsKey($"backbone.layer{stage}.{block}.downsample.0.weight"));
            }
            outputs.Add(x);
        }
        return (graph, outputs);
    }

    /// <summary>
    /// Exports, then runs the graph in ONNX Runtime and the model in TorchSharp on the same
    /// preprocessed inputs; fails with <see cref="OnnxExportException"/> if any probability differs
    /// by more than <paramref name="tolerance"/>.
    /// </summary>
    public static VerifiedExport ExportVerified(ImageClassifier model, int inputSize, IReadOnlyList<float[]> inputs, double tolerance = DefaultTolerance) =>
        Verify(Export(model, inputSize), model, inputSize, inputs, tolerance);

    /// <summary>Checks a graph against the TorchSharp model on the given preprocessed inputs (see <see cref="ExportVerified"/>).</summary>
    public static VerifiedExport Verify(byte[] onnx, ImageClassifier model, int inputSize, IReadOnlyList<float[]> inputs, double tolerance = DefaultTolerance)
    {
        ArgumentNullException.ThrowIfNull(inputs);
        if (inputs.Count == 0)
        {
            throw new ArgumentException("Verification needs at least one input.", nameof(inputs));
        }
        using var served = new OnnxEngine(onnx, OnnxEngineOptions.Default);
        using var reference = new TorchSharpEngine(model, inputSize, ownsModel: false);
        var worst = 0.0;
        foreach (var input in inputs)
        {
            var expected = reference.PredictProbabilities(input, 1);
            var actual = served.PredictProbabilities(input, 1);
            for (var i = 0; i < expected.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(expected[i] - actual[i]));
            }
        }
        if (!(worst <= tolerance))
        {
            throw new OnnxExportException(
                $"The exported ONNX graph disagrees with TorchSharp: max |difference| of probabilities {worst:E2} over {inputs.Count} inputs exceeds {tolerance:E0}. The model is not published.");
        }
        return new VerifiedExport(onnx, worst, inputs.Count);
    }

    private static string Block(OnnxGraphBuilder graph, string input, string prefix, ResNetArchitecture architecture, int stride, bool hasDownsample)
    {
        string x;
        if (architecture.Block == ResNetBlockKind.Basic)
        {
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, $"{prefix}.conv1", stride, Pads(architecture, 3, stride)), $"{prefix}.bn1"));
            x = graph.BatchNorm(graph.Conv(x, $"{prefix}.conv2", 1, Pads(architecture, 3, 1)), $"{prefix}.bn2");
        }
        else
        {
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(input, $"{prefix}.conv1", 1, (0, 0, 0, 0)), $"{prefix}.bn1"));
            x = graph.Unary("Relu", graph.BatchNorm(graph.Conv(x, $"{prefix}.conv2", stride, Pads(architecture, 3, stride)), $"{prefix}.bn2"));
            x = graph.BatchNorm(graph.Conv(x, $"{prefix}.conv3", 1, (0, 0, 0, 0)), $"{prefix}.bn3");
        }
        var identity = hasDownsample
            ? graph.BatchNorm(graph.Conv(input, $"{prefix}.downsample.0", stride, (0, 0, 0, 0)), $"{prefix}.downsample.1")
            : input;
        return graph.Unary("Relu", graph.Add(x, identity));
    }

    private static (int Left, int Right, int Top, int Bottom) Pads(ResNetArchitecture architecture, int kernel, int stride) =>
        architecture.PadsFor(kernel, stride);
}
