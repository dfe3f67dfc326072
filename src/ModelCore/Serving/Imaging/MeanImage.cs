using System.Buffers.Binary;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>
/// The <see cref="PreprocessingConfig.MeanImageFile"/> format: 3 x size x size float32 values,
/// little-endian, CHW planar, in the config's channel order, no header.
/// </summary>
public static class MeanImage
{
    /// <summary>Number of floats in a mean image for a square input of the given side.</summary>
    public static int Length(int inputSize) => checked(3 * inputSize * inputSize);

    /// <summary>The bytes of a mean image as stored in a model folder.</summary>
    public static byte[] ToBytes(float[] meanImage)
    {
        using var stream = new MemoryStream();
        Write(stream, meanImage);
        return stream.ToArray();
    }

    /// <summary>Reads a mean image, checking that the stream holds exactly <see cref="Length"/> floats.</summary>
    public static float[] Read(Stream stream, int inputSize)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentOutOfRangeException.ThrowIfLessThan(inputSize, 1);
        var values = new float[Length(inputSize)];
        var bytes = new byte[values.Length * sizeof(float)];
        stream.ReadExactly(bytes);
        if (stream.ReadByte() != -1)
        {
            throw new InvalidDataException($"mean image is longer than 3x{inputSize}x{inputSize} float32 values ({bytes.Length} bytes)");
        }

        for (int i = 0; i < values.Length; i++)
        {
            values[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * sizeof(float)));
        }

        return values;
    }

    /// <inheritdoc cref="Read(Stream, int)"/>
    public static float[] ReadFile(string path, int inputSize)
    {
        using var stream = File.OpenRead(path);
        if (stream.Length != (long)Length(inputSize) * sizeof(float))
        {
            throw new InvalidDataException($"mean image '{path}' is {stream.Length} bytes; 3x{inputSize}x{inputSize} float32 values are {Length(inputSize) * sizeof(float)}");
        }

        return Read(stream, inputSize);
    }

    /// <summary>Writes values in the same format (for exporting a model's mean image).</summary>
    public static void Write(Stream stream, ReadOnlySpan<float> values)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }

        stream.Write(bytes);
    }
}
