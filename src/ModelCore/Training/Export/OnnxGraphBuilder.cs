using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Export;

/// <summary>Accumulates ONNX nodes and initializers (OnnxSharp's protobuf object model) for one graph.</summary>
internal sealed partial class OnnxGraphBuilder(IReadOnlyDictionary<string, Tensor> state)
{
    private readonly GraphProto graph = new() { Name = "serverless-classifier" };
    private int counter;

    /// <summary>True when the model has a parameter or buffer of that name.</summary>
    public bool Has(string key) => state.ContainsKey(key);

    /// <summary>A convolution with the weight <c>key.weight</c>, and <c>key.bias</c> when the model has one.</summary>
    public string Conv(string input, string key, int stride, (int Left, int Right, int Top, int Bottom) pads)
    {
        var weight = Initializer($"{key}.weight");
        var kernel = (int)state[$"{key}.weight"].shape[^1];
        string[] inputs = Has($"{key}.bias") ? [input, weight, Initializer($"{key}.bias")] : [input, weight];
        return Node("Conv", inputs,
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

    public string AveragePool(string input, int kernel, int stride) =>
        Node("AveragePool", [input], Ints("kernel_shape", kernel, kernel), Ints("strides", stride, stride));

    /// <summary>Global average pooling, flattened to (N, C).</summary>
    public string GlobalAveragePoolFlat(string input) => Unary("Flatten", Unary("GlobalAveragePool", input), Int("axis", 1));

    /// <summary>
    /// torch's <c>AdaptiveAvgPool2d(output)</c> on a (N, C, height, width) value, then <c>flatten(1)</c>:
    /// nothing when the sizes agree, an AveragePool when the output divides the input, otherwise a
    /// MatMul with the constant pooling matrix of torch's windows [floor(i H / out), ceil((i + 1) H / out)).
    /// </summary>
    public string AdaptiveAveragePoolFlat(string input, int channels, int height, int width, int output)
    {
        if (height == output && width == output)
        {
            return Unary("Flatten", input, Int("axis", 1));
        }
        if (height == width && height % output == 0)
        {
            return Unary("Flatten", AveragePool(input, height / output, height / output), Int("axis", 1));
        }
        var pooling = new float[height * width * output * output];
        for (var i = 0; i < output; i++)
        {
            var (top, bottom) = (i * height / output, (((i + 1) * height) + output - 1) / output);
            for (var j = 0; j < output; j++)
            {
                var (left, right) = (j * width / output, (((j + 1) * width) + output - 1) / output);
                var weight = 1f / ((bottom - top) * (right - left));
                for (var y = top; y < bottom; y++)
                {
                    for (var x = left; x < right; x++)
                    {
                        pooling[(((y * width) + x) * output * output) + (i * output) + j] = weight;
                    }
                }
            }
        }
        var rows = Node("Reshape", [input, Constant($"pool_shape_{counter}", [0, channels, height * width])]);
        var pooled = Node("MatMul", [rows, Constant($"pool_matrix_{counter}", pooling, height * width, output * output)]);
        return Unary("Flatten", pooled, Int("axis", 1));
    }

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

    private string Constant(string name, float[] values, params long[] dims)
    {
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        proto.Dims.AddRange(dims);
        graph.Initializer.Add(proto);
        return name;
    }

    private string Constant(string name, long[] values)
    {
        var proto = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        proto.Dims.Add(values.Length);
        graph.Initializer.Add(proto);
        return name;
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
