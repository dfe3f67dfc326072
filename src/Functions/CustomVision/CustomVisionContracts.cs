using System.Security.Cryptography;
using System.Text;

namespace ServerlessClassifier.Functions.CustomVision;

/// <summary>One tag's probability, as Custom Vision's prediction API answers it.</summary>
public sealed record CustomVisionPrediction(double Probability, Guid TagId, string TagName);

/// <summary>The body of a Custom Vision classify call (ImagePrediction): predictions by probability, highest first.</summary>
public sealed record CustomVisionImagePrediction(Guid Id, Guid Project, Guid Iteration, DateTimeOffset Created, IReadOnlyList<CustomVisionPrediction> Predictions);

/// <summary>Custom Vision's error body (CustomVisionError).</summary>
public sealed record CustomVisionError(string Code, string Message);

/// <summary>A Custom Vision call refused: its HTTP status and Custom Vision's error code.</summary>
public sealed class CustomVisionException(int statusCode, string code, string message) : Exception(message)
{
    public int StatusCode { get; } = statusCode;

    public string Code { get; } = code;
}

/// <summary>
/// Stable ids for what Custom Vision names by GUID: a tag is <c>UUIDv5(namespace, "&lt;model&gt;/tag/&lt;label&gt;")</c>
/// and an iteration <c>UUIDv5(namespace, "&lt;model&gt;/iteration/&lt;version&gt;")</c> (RFC 9562 name-based, SHA-1),
/// so a label keeps its tag id in every version of a model and on every instance.
/// </summary>
public static class CustomVisionIds
{
    /// <summary>This app's namespace for the name-based ids (a fixed random GUID).</summary>
    public static readonly Guid Namespace = new("5b1f7c2e-8d4a-4f0b-9c3e-2a6d9e1f4b70");

    public static Guid Tag(string model, string label) => NameBased(Namespace, $"{model}/tag/{label}");

    public static Guid Iteration(string model, string version) => NameBased(Namespace, $"{model}/iteration/{version}");

    /// <summary>A version-5 (SHA-1 name-based) UUID of <paramref name="name"/> in <paramref name="space"/>.</summary>
    public static Guid NameBased(Guid space, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var input = new byte[16 + Encoding.UTF8.GetByteCount(name)];
        space.TryWriteBytes(input, bigEndian: true, out _);
        Encoding.UTF8.GetBytes(name, input.AsSpan(16));
#pragma warning disable CA5350 // RFC 9562 defines version 5 UUIDs with SHA-1; this is an identifier, not security.
        var hash = SHA1.HashData(input);
#pragma warning restore CA5350
        hash[6] = (byte)((hash[6] & 0x0F) | 0x50);
        hash[8] = (byte)((hash[8] & 0x3F) | 0x80);
        return new Guid(hash.AsSpan(0, 16), bigEndian: true);
    }
}
