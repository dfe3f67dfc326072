using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Google.Protobuf;
using Onnx;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Inference;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// A small graph that keeps serving's contract (<see cref="OnnxGraphNames"/>) and tells red, green and blue images
/// apart, written with OnnxSharp's protobuf types (no TorchSharp, no training): the <c>GlobalAveragePool</c> of the
/// input, flattened, is the <c>features</c> output (the mean of each normalised channel); a <c>Gemm</c> with a diagonal
/// weight maps channel c to class c, and a <c>Softmax</c> gives <c>probabilities</c>. With ImageNet mean/std
/// preprocessing a saturated red image's features are about (1.6, -1.5, -1.3), so the red class wins by a wide margin,
/// and likewise for green and blue. Before the pooling, a stack of 3 x 3 convolutions whose weights pass each colour
/// channel through unchanged (and compute 32 channels of zeros beside them) costs a forward pass about what a small
/// CNN's costs at 64 px (some 150 million multiply-adds): requests that arrive together queue behind a running pass as
/// they do with a trained model, which the micro-batching tests rely on. Its <c>activation_map</c> is the exact one of
/// that head over the last feature map, on a grid of 8 x 8 pixel cells.
/// </summary>
public static class ColourModel
{
    /// <summary>The graph's file name in a model folder (the name the training library writes).</summary>
    public const string OnnxFileName = "model.onnx";

    /// <summary>Logit per unit of a channel's normalised mean: top probabilities near 0.997, never exactly 1.</summary>
    private const float Gain = 2f;

    /// <summary>Channels of the pass-through convolutions, and how many 32-to-32 ones there are.</summary>
    private const int Width = 32, Convolutions = 4;

    /// <summary>The graph for <paramref name="inputSize"/> x <paramref name="inputSize"/> RGB input and three classes (R, G, B).</summary>
    /// <param name="multiLabel">A multi-label model's graph: each class's <c>probabilities</c> is a sigmoid of its logit, not a softmax.</param>
    public static byte[] Graph(int inputSize, bool multiLabel = false)
    {
        var graph = new GraphProto { Name = "colour-means" };
        graph.Input.Add(Tensor(OnnxGraphNames.Input, 3, inputSize, inputSize));
        graph.Initializer.Add(Floats("weight", [Gain, 0, 0, 0, Gain, 0, 0, 0, Gain], 3, 3));
        graph.Initializer.Add(Floats("bias", [0, 0, 0], 3));
        var x = Convolution(graph, OnnxGraphNames.Input, "widen", 3, Width, kernel: 3);
        for (var i = 0; i < Convolutions; i++)
        {
            x = Convolution(graph, x, $"conv{i}", Width, Width, kernel: 3);
        }
        x = Convolution(graph, x, "narrow", Width, 3, kernel: 1);
        graph.Node.Add(Node("GlobalAveragePool", [x], "pooled"));
        graph.Node.Add(Node("Flatten", ["pooled"], OnnxGraphNames.Features, new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 }));
        graph.Node.Add(Node("Gemm", [OnnxGraphNames.Features, "weight", "bias"], "logits"));
        graph.Node.Add(multiLabel
            ? Node("Sigmoid", ["logits"], OnnxGraphNames.Probabilities)
            : Node("Softmax", ["logits"], OnnxGraphNames.Probabilities, new AttributeProto { Name = "axis", Type = AttributeProto.Types.AttributeType.Int, I = 1 }));
        // The activation map as the exporter computes it for a linear head over pooled maps: the centred head (each class's
        // weight row minus the rows' mean) over the map before the pool, here pooled 8 x 8 first (which keeps its mean),
        // so each class's grid averages to its logit minus the logits' mean.
        graph.Node.Add(Node("AveragePool", [x], "cam_cells",
            new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 8, 8 } },
            new AttributeProto { Name = "strides", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 8, 8 } }));
        graph.Node.Add(Node("ReduceMean", ["cam_cells"], "cam_mean",
            new AttributeProto { Name = "axes", Type = AttributeProto.Types.AttributeType.Ints, Ints = { 1 } }));
        graph.Node.Add(Node("Sub", ["cam_cells", "cam_mean"], "cam_centred"));
        graph.Initializer.Add(Floats("cam_gain", [Gain]));
        graph.Node.Add(Node("Mul", ["cam_centred", "cam_gain"], OnnxGraphNames.ActivationMap));
        graph.Output.Add(Tensor(OnnxGraphNames.Probabilities, 3));
        graph.Output.Add(Tensor(OnnxGraphNames.Features, 3));
        graph.Output.Add(Tensor(OnnxGraphNames.ActivationMap, 3, inputSize / 8, inputSize / 8));
        var model = new ModelProto { IrVersion = 7, ProducerName = "ServerlessClassifier.Functions.Tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return model.ToByteArray();
    }

    /// <summary>
    /// Writes the files, then <paramref name="manifest"/> listing each with its size and SHA-256 (as the training
    /// library's checkpoint writer does), into <paramref name="folder"/>.
    /// </summary>
    public static void WritePackage(string folder, ModelManifest manifest, params (string Role, string Name, byte[] Content)[] files)
    {
        Directory.CreateDirectory(folder);
        var entries = new List<ModelFileEntry>();
        foreach (var (role, name, content) in files)
        {
            File.WriteAllBytes(Path.Combine(folder, name), content);
            entries.Add(new ModelFileEntry(role, name, content.Length, Convert.ToHexStringLower(SHA256.HashData(content))));
        }
        var final = manifest with { Files = entries };
        final.Validate(folder);
        File.WriteAllText(Path.Combine(folder, ModelManifest.FileName), final.ToJson());
    }

    /// <summary>A convolution (stride 1, same size) whose output channel c is input channel c for c below both widths, else 0.</summary>
    private static string Convolution(GraphProto graph, string input, string name, int inputs, int outputs, int kernel)
    {
        var weight = new float[outputs * inputs * kernel * kernel];
        for (var c = 0; c < Math.Min(inputs, outputs); c++)
        {
            weight[(((c * inputs) + c) * kernel * kernel) + (kernel * kernel / 2)] = 1;
        }
        graph.Initializer.Add(Floats($"{name}.weight", weight, outputs, inputs, kernel, kernel));
        var pad = kernel / 2;
        graph.Node.Add(Node("Conv", [input, $"{name}.weight"], name,
            new AttributeProto { Name = "kernel_shape", Type = AttributeProto.Types.AttributeType.Ints, Ints = { kernel, kernel } },
            new AttributeProto { Name = "pads", Type = AttributeProto.Types.AttributeType.Ints, Ints = { pad, pad, pad, pad } }));
        return name;
    }

    private static NodeProto Node(string op, string[] inputs, string output, params AttributeProto[] attributes)
    {
        var node = new NodeProto { OpType = op, Name = output, Output = { output } };
        node.Input.AddRange(inputs);
        node.Attribute.AddRange(attributes);
        return node;
    }

    private static TensorProto Floats(string name, float[] values, params long[] dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }

    /// <summary>A float tensor with a dynamic batch dimension followed by <paramref name="dimensions"/>.</summary>
    private static ValueInfoProto Tensor(string name, params long[] dimensions)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        shape.Dim.AddRange(dimensions.Select(d => new TensorShapeProto.Types.Dimension { DimValue = d }));
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
