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
/// Exports a classifier (any backbone of the registry, either head) to one ONNX graph: backbone, head
/// and softmax (sigmoids for a multi-label head), BatchNorm in inference form, a dynamic batch dimension. Input <c>input</c> (N, 3, S, S), already preprocessed as the manifest says; outputs
/// <c>probabilities</c> (N, classes) and <c>features</c> (N, NumFeatures), the backbone output (the input
/// of the layer the head replaced; for a ResNet, the pooled outputs of its last PooledStages stages), so the frozen backbone can also run on the serving engine;
/// and for backbones whose features are pooled feature maps (ResNet, DenseNet), <c>activation_map</c> (N, classes, H, W), the exact class activation map
/// (<see cref="OnnxGraphBuilder.ActivationMap"/>).
/// </summary>
public static class OnnxExport
{
    public const string InputName = OnnxGraphNames.Input;
    public const string ProbabilitiesName = OnnxGraphNames.Probabilities;
    public const string FeaturesName = OnnxGraphNames.Features;
    public const string ActivationMapName = OnnxGraphNames.ActivationMap;
    public const double DefaultTolerance = 1e-4;

    /// <summary>Output of <see cref="ExportPrefix"/>: the last frozen stage's feature map (N, C, H, W).</summary>
    public const string PrefixName = "prefix";

    /// <summary>Builds the graph from the module structure and its current weights.</summary>
    public static byte[] Export(ImageClassifier model, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(model);
        var graph = new OnnxGraphBuilder(model.state_dict());
        // The backbone's own nodes (each architecture emits its module structure), then the head.
        var (features, maps) = model.Backbone.EmitOnnxWithMaps(graph, InputName, inputSize);
        var logits = model.HeadSpec.Kind switch
        {
            HeadKind.Linear => graph.Linear(features, "head.fc"),
            _ => throw new NotSupportedException($"Head kind {model.HeadSpec.Kind} cannot be exported."),
        };
        // A multi-label head's outputs are independent sigmoids; a multi-class head's a softmax over the labels.
        var probabilities = model.HeadSpec.MultiLabel ? graph.Unary("Sigmoid", logits) : graph.Unary("Softmax", logits, OnnxGraphBuilder.Int("axis", 1));
        List<(string, string, long?[])> outputs = [(probabilities, ProbabilitiesName, [model.NumClasses]), (features, FeaturesName, [model.Backbone.NumFeatures])];
        if (maps.Count > 0)
        {
            // A linear head over pooled maps has an exact activation map; ONNX Runtime computes it only for callers that ask for it.
            outputs.Add((graph.ActivationMap(maps, "head.fc"), ActivationMapName, [model.NumClasses, null, null]));
        }
        return graph.Build(InputName, inputSize, outputs).ToByteArray();
    }

    /// <summary>
    /// The frozen prefix of a fine-tune: the stem and the first <paramref name="stages"/> stages of a ResNet,
    /// one output <see cref="PrefixName"/> (N, C, H, W), the same function as <c>TorchVisionResNet.ForwardPrefix</c>.
    /// </summary>
    public static byte[] ExportPrefix(ImageClassifier model, int inputSize, int stages)
    {
        ArgumentNullException.ThrowIfNull(model);
        var resnet = model.Backbone as TorchVisionResNet
            ?? throw new NotSupportedException($"A cached frozen prefix needs a ResNet backbone; got {model.Backbone.Architecture.Name}.");
        var graph = new OnnxGraphBuilder(model.state_dict());
        var outputs = resnet.EmitStages(graph, InputName, stages);
        return graph.Build(InputName, inputSize, [(outputs[^1], PrefixName, [null, null, null])]).ToByteArray();
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
}
