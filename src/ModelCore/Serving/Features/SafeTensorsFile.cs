using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// One float32 matrix in the safetensors format (https://huggingface.co/docs/safetensors): an 8-byte little-endian
/// header length, a JSON header (<c>__metadata__</c>, a string-to-string map, and each tensor's dtype, shape and
/// byte offsets), then the raw little-endian data. Python reads it with <c>safetensors.numpy.load_file</c>.
/// Written by hand because the format is this small and the serving side carries no tensor library; only the
/// subset used here (F32 tensors) is read, and every offset is checked.
/// </summary>
public static class SafeTensorsFile
{
    /// <summary>Largest header accepted (the reference implementation's limit).</summary>
    public const int MaxHeaderBytes = 100_000_000;

    /// <summary>Writes one F32 tensor <paramref name="name"/> of <paramref name="shape"/> with <paramref name="metadata"/>.</summary>
    public static byte[] Write(string name, ReadOnlySpan<float> values, IReadOnlyList<long> shape, IReadOnlyDictionary<string, string> metadata)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentNullException.ThrowIfNull(metadata);
        if (shape.Aggregate(1L, (a, b) => checked(a * b)) != values.Length)
        {
            throw new ArgumentException($"Shape [{string.Join(", ", shape)}] does not hold {values.Length} values.", nameof(shape));
        }
        var dataBytes = (long)values.Length * sizeof(float);
        var meta = new JsonObject();
        foreach (var (key, value) in metadata)
        {
            meta[key] = value;
        }
        var header = new JsonObject
        {
            ["__metadata__"] = meta,
            [name] = new JsonObject
            {
                ["dtype"] = "F32",
                ["shape"] = new JsonArray([.. shape.Select(d => JsonValue.Create(d))]),
                ["data_offsets"] = new JsonArray(0, dataBytes),
            },
        };
        var json = Encoding.UTF8.GetBytes(header.ToJsonString());
        var padded = (json.Length + 7) / 8 * 8; // the data starts 8-byte aligned; the spec pads the header with spaces
        var file = new byte[checked(8 + padded + dataBytes)];
        BinaryPrimitives.WriteUInt64LittleEndian(file, (ulong)padded);
        json.CopyTo(file, 8);
        file.AsSpan(8 + json.Length, padded - json.Length).Fill((byte)' ');
        var data = file.AsSpan(8 + padded);
        if (BitConverter.IsLittleEndian)
        {
            MemoryMarshal.AsBytes(values).CopyTo(data);
        }
        else
        {
            for (var i = 0; i < values.Length; i++)
            {
                BinaryPrimitives.WriteSingleLittleEndian(data[(i * 4)..], values[i]);
            }
        }
        return file;
    }

    /// <summary>Reads the F32 tensor <paramref name="name"/> and the metadata of a file's bytes.</summary>
    /// <param name="source">Names the file in errors.</param>
    /// <exception cref="InvalidDataException">The bytes are not a safetensors file, or <paramref name="name"/> is not an F32 tensor in it.</exception>
    public static SafeTensor Read(ReadOnlySpan<byte> file, string name, string source)
    {
        if (file.Length < 8)
        {
            throw Invalid(source, "it is shorter than the 8-byte header length");
        }
        var headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        if (headerLength > MaxHeaderBytes || (long)headerLength > file.Length - 8)
        {
            throw Invalid(source, $"its header length {headerLength} does not fit the file ({file.Length} bytes)");
        }
        JsonObject header;
        try
        {
            header = JsonNode.Parse(file.Slice(8, (int)headerLength)) as JsonObject ?? throw Invalid(source, "its header is not a JSON object");
        }
        catch (JsonException e)
        {
            throw Invalid(source, $"its header is not valid JSON ({e.Message})");
        }
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (header["__metadata__"] is JsonObject meta)
        {
            foreach (var (key, value) in meta)
            {
                metadata[key] = value is JsonValue v && v.TryGetValue<string>(out var text) ? text : throw Invalid(source, $"metadata \"{key}\" is not a string");
            }
        }
        if (header[name] is not JsonObject tensor)
        {
            throw Invalid(source, $"it has no tensor \"{name}\"");
        }
        try
        {
            if (tensor["dtype"]?.GetValue<string>() != "F32")
            {
                throw Invalid(source, $"tensor \"{name}\" is {tensor["dtype"]}, not F32");
            }
            var shape = (tensor["shape"] as JsonArray ?? throw Invalid(source, $"tensor \"{name}\" has no shape")).Select(d => d!.GetValue<long>()).ToArray();
            var offsets = (tensor["data_offsets"] as JsonArray ?? throw Invalid(source, $"tensor \"{name}\" has no data_offsets")).Select(d => d!.GetValue<long>()).ToArray();
            var data = file[(8 + (int)headerLength)..];
            var count = shape.Aggregate(1L, (a, b) => b < 0 ? throw Invalid(source, "a dimension is negative") : checked(a * b));
            if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] > data.Length || offsets[1] - offsets[0] != count * sizeof(float))
            {
                throw Invalid(source, $"tensor \"{name}\"'s data_offsets [{string.Join(", ", offsets)}] do not hold shape [{string.Join(", ", shape)}] in {data.Length} data bytes");
            }
            var bytes = data.Slice((int)offsets[0], (int)(count * sizeof(float)));
            var values = new float[count];
            if (BitConverter.IsLittleEndian)
            {
                bytes.CopyTo(MemoryMarshal.AsBytes(values.AsSpan()));
            }
            else
            {
                for (var i = 0; i < values.Length; i++)
                {
                    values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
                }
            }
            return new SafeTensor(shape, values, metadata);
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException or NullReferenceException)
        {
            throw Invalid(source, $"tensor \"{name}\"'s header entry is malformed ({e.Message})");
        }
    }

    private static InvalidDataException Invalid(string source, string problem) => new($"{source} is not a valid safetensors file: {problem}.");
}

/// <summary>A tensor read from a safetensors file, with the file's metadata.</summary>
public sealed record SafeTensor(IReadOnlyList<long> Shape, float[] Values, IReadOnlyDictionary<string, string> Metadata);
