using System.Runtime.InteropServices;
using Google.Protobuf;
using Onnx;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>Reading and writing the initializers of an ONNX graph (OnnxSharp's protobuf object model).</summary>
internal static class GraphTensors
{
    /// <summary>The initializers by name.</summary>
    public static Dictionary<string, TensorProto> Initializers(GraphProto graph) =>
        graph.Initializer.ToDictionary(t => t.Name, StringComparer.Ordinal);

    /// <summary>A float initializer's values, from raw data or the float field.</summary>
    public static float[] Floats(TensorProto tensor)
    {
        if (tensor.DataType != (int)TensorProto.Types.DataType.Float)
        {
            throw new InvalidDataException($"Initializer {tensor.Name} is not float32 (type {tensor.DataType}).");
        }
        return tensor.RawData.Length > 0
            ? MemoryMarshal.Cast<byte, float>(tensor.RawData.Span).ToArray()
            : [.. tensor.FloatData];
    }

    public static TensorProto Float(string name, float[] values, IEnumerable<long> dims) =>
        Raw(name, TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(values.AsSpan()), dims);

    public static TensorProto Int8(string name, sbyte[] values, IEnumerable<long> dims) =>
        Raw(name, TensorProto.Types.DataType.Int8, MemoryMarshal.AsBytes(values.AsSpan()), dims);

    public static TensorProto UInt8(string name, byte[] values, IEnumerable<long> dims) =>
        Raw(name, TensorProto.Types.DataType.Uint8, values, dims);

    public static TensorProto Int32(string name, int[] values, IEnumerable<long> dims) =>
        Raw(name, TensorProto.Types.DataType.Int32, MemoryMarshal.AsBytes(values.AsSpan()), dims);

    /// <summary>A tensor of one value and no dimensions (a scalar).</summary>
    public static TensorProto Scalar(string name, float value) => Float(name, [value], []);

    public static TensorProto ScalarUInt8(string name, byte value) => UInt8(name, [value], []);

    private static TensorProto Raw(string name, TensorProto.Types.DataType type, ReadOnlySpan<byte> bytes, IEnumerable<long> dims)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.AddRange(dims);
        return tensor;
    }
}
