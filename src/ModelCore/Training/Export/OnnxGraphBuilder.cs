using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Export;

/// <summary>Accumulates ONNX nodes and initializers (OnnxSharp's protobuf object model) for one graph.</summary>
internal sealed class OnnxGraphBuilder(IReadOnlyDictionary<string, Tensor> state)
{
    private readonly GraphProto graph = new() { Name = "serverless-classifier" };
    private int counter;

    public string Conv(string input, string key, int stride, (int Left, int Right, int Top, int Bottom) pads)
    {
        var weight = Initializer($"{key}.weight");
        var kernel = (int)state[$"{key}.weight"].shape[^1];
        return Node("Conv", [input, weight],
            Ints("kernel_shape", kernel, kernel),
            Ints("strides", stride, stride),
            Ints("pads", pads.Top, pads.Left, pads.Bottom, pads.Right));
    }

    public string BatchNorm(string input, string key) =>
        Node("BatchNormalization",
            [input, Initializer($"{key}.weight"), Initializer($"{key}.bias"), Initializer($"{key}.running_mean"), Initializer($"{key}.running_var")],
            new AttributeProto { Name = "epsilon", Type = AttributeProto.Types.AttributeType.Float, F = 1e-5f });

    public string MaxPool(string input, int kernel, int stride, (int Left, int Right, int Top, int Bottom) pads) =>
        Node("MaxPool", [input],
            Ints("kernel_shape", kernel, kernel),
            Ints("strides", stride, stride),
            Ints("pads", pads.Top, pads.Left, pads.Bottom, pads.Right));

    /// <summary>y = x W^T + b, as torch's Linear.</summary>
    public string Linear(string input, string key) =>
        Node("Gemm", [input, Initializer($"{key}.weight"), Initializer($"{key}.bias")],
            new AttributeProto { Name = "transB", Type = AttributeProto.Types.AttributeType.Int, I = 1 });

    public string Unary(string op, string input, params AttributeProto[] attributes) => Node(op, [input], attributes);

    public string Add(string a, string b) => Node("Add", [a, b]);

    public string Concat(IReadOnlyList<string> inputs, int axis) => inputs.Count == 1 ? inputs[0] : Node("Concat", [.. inputs], Int("axis", axis));

    public static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    public static AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>The finished model: opset 13, one float input with a dynamic batch dimension, the given outputs.</summary>
    /// <param name="outputs">Each output's value, name and dimensions after the batch (null: not fixed).</param>
    public ModelProto Build(string inputName, int inputSize, IEnumerable<(string Value, string Name, long?[] Dimensions)> outputs)
    {
        graph.Input.Add(TensorInfo(inputName, 3, inputSize, inputSize));
        foreach (var (value, name, dimensions) in outputs)
        {
            graph.Node.Add(new NodeProto { OpType = "Identity", Name = $"output_{name}", Input = { value }, Output = { name } });
            graph.Output.Add(TensorInfo(name, dimensions));
        }
        var model = new ModelProto
        {
            IrVersion = 7,
            ProducerName = "ServerlessClassifier",
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 13 });
        return model;
    }

    private string Node(string op, IEnumerable<string> inputs, params AttributeProto[] attributes)
    {
        var output = $"{op.ToLowerInvariant()}_{counter++}";
        var node = new NodeProto { OpType = op, Name = output, Output = { output } };
        node.Input.AddRange(inputs);
        node.Attribute.AddRange(attributes);
        graph.Node.Add(node);
        return output;
    }

    private string Initializer(string key)
    {
        if (!state.TryGetValue(key, out var value))
        {
            throw new InvalidOperationException($"The model has no parameter {key} to export.");
        }
        if (graph.Initializer.All(t => t.Name != key))
        {
            using var contiguous = value.detach().cpu().to_type(ScalarType.Float32).contiguous();
            var data = contiguous.data<float>().ToArray();
            var proto = new TensorProto { Name = key, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(data.AsSpan())) };
            proto.Dims.AddRange(value.shape);
            graph.Initializer.Add(proto);
        }
        return key;
    }

    private static ValueInfoProto TensorInfo(string name, params long?[] dimensions)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = "batch" });
        for (var i = 0; i < dimensions.Length; i++)
        {
            shape.Dim.Add(dimensions[i] is { } value
                ? new TensorShapeProto.Types.Dimension { DimValue = value }
                : new TensorShapeProto.Types.Dimension { DimParam = $"{name}_{i + 1}" });
        }
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
