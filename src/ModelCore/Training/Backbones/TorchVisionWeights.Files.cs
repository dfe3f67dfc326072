using System.Collections;
using System.Globalization;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Runtime;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>Reading torchvision state dicts (.pth pickles or safetensors) and writing ours under torchvision's names.</summary>
public static partial class TorchVisionWeights
{
    /// <summary>
    /// Our weights under torchvision's names (<c>backbone.</c> removed, <c>head.fc.*</c> as the replaced
    /// layer's: <c>fc.*</c>, <c>classifier.6.*</c>, <c>classifier.*</c>), so
    /// <c>torchvision.models.&lt;id&gt;(num_classes=...).load_state_dict</c> takes them. The tensors are the
    /// model's own: do not dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> ToTorchVisionStateDict(ImageClassifier model)
    {
        ArgumentNullException.ThrowIfNull(model);
        var architecture = model.Backbone.Architecture;
        if (model.Head is not LinearHead)
        {
            throw new NotSupportedException($"torchvision's {architecture.Name} ends in one linear layer ({architecture.ReplacedLayer}); a {model.HeadSpec.Kind} head has no torchvision name.");
        }

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in model.state_dict())
        {
            var key = name.StartsWith(BackbonePrefix, StringComparison.Ordinal) ? name[BackbonePrefix.Length..]
                : name.StartsWith(HeadPrefix, StringComparison.Ordinal) ? architecture.HeadKey(name[HeadPrefix.Length..])
                : throw new InvalidOperationException($"Unexpected parameter '{name}' in {nameof(ImageClassifier)}.");
            result.Add(key, tensor);
        }
        return result;
    }

    /// <summary>Writes our weights as a safetensors file with torchvision's names (see <see cref="ToTorchVisionStateDict"/>).</summary>
    public static void SaveSafetensors(ImageClassifier model, string path)
    {
        using var stream = File.Create(path);
        SaveSafetensors(model, stream);
    }

    /// <summary>Writes our weights as safetensors with torchvision's names; the stream stays open.</summary>
    public static void SaveSafetensors(ImageClassifier model, Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var scope = NewDisposeScope();
        // Contiguous CPU copies: safetensors stores raw row-major bytes.
        var tensors = ToTorchVisionStateDict(model).ToDictionary(
            pair => pair.Key,
            pair => pair.Value.detach().cpu().contiguous(),
            StringComparer.Ordinal);
        Safetensors.SaveStateDict(stream, tensors, leaveOpen: true);
    }

    /// <summary>
    /// Reads a <c>state_dict</c> from a <c>torch.save</c> pickle or a safetensors file, told apart by
    /// content, not by extension. The caller owns (disposes) the tensors.
    /// </summary>
    public static Dictionary<string, Tensor> ReadStateDict(string path)
    {
        using var stream = File.OpenRead(path);
        return ReadStateDict(stream);
    }

    /// <inheritdoc cref="ReadStateDict(string)"/>
    public static Dictionary<string, Tensor> ReadStateDict(Stream stream)
    {
        TorchRuntime.EnsureInitialized();
        stream = Seekable(stream);
        if (IsSafetensors(stream))
        {
            return Safetensors.LoadStateDict(stream, leaveOpen: true);
        }
        return FromPickle(Unpickle(stream, skipTensorRead: false), value => value as Tensor, DisposeAll);
    }

    /// <summary>
    /// The names and shapes of a <c>state_dict</c> file without reading its tensors (a safetensors
    /// header, or a pickle's tensor descriptions): enough to tell its architecture before loading it.
    /// </summary>
    public static Dictionary<string, long[]> ReadShapes(string path)
    {
        TorchRuntime.EnsureInitialized(); // the unpickler's tensor descriptions use TorchSharp's types
        using var stream = File.OpenRead(path);
        if (IsSafetensors(stream))
        {
            var length = new byte[8];
            stream.ReadExactly(length);
            var header = new byte[checked((int)BitConverter.ToUInt64(length))];
            stream.ReadExactly(header);
            using var json = JsonDocument.Parse(header);
            return json.RootElement.EnumerateObject()
                .Where(p => p.Name != "__metadata__")
                .ToDictionary(p => p.Name, p => p.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray(), StringComparer.Ordinal);
        }
        return FromPickle(Unpickle(stream, skipTensorRead: true), UnreadShape, _ => { });
    }

    /// <summary>
    /// The shape of a tensor the unpickler described without reading it. TorchSharp.PyBridge 1.4.4 keeps
    /// that description type (TensorConstructorArgs) internal, with a public <c>Shape</c>; read by name.
    /// </summary>
    private static long[]? UnreadShape(object? value) =>
        value?.GetType() is { Name: "TensorConstructorArgs" } type ? type.GetProperty("Shape")?.GetValue(value) as long[] : null;

    /// <summary>The architecture a <c>state_dict</c> file holds, from its names and shapes (its tensors are not read).</summary>
    public static BackboneArchitecture DetectArchitecture(string path) => DetectArchitecture(ReadShapes(path));

    private static Stream Seekable(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        if (stream.CanSeek)
        {
            return stream;
        }
        // Both readers seek (the zip directory sits at the end of a .pth).
        var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        buffer.Position = 0;
        return buffer;
    }

    /// <summary>A safetensors file starts with the little-endian length of a JSON header that starts with '{'.</summary>
    private static bool IsSafetensors(Stream stream)
    {
        var start = stream.Position;
        Span<byte> head = stackalloc byte[9];
        var read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = start;
        return read == head.Length && head[8] == (byte)'{' && BitConverter.ToUInt64(head[..8]) < int.MaxValue;
    }

    private static Hashtable Unpickle(Stream stream, bool skipTensorRead)
    {
        try
        {
            return PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true, skipTensorRead);
        }
        catch (NotImplementedException e) when (e.Message.Contains("old PyTorch format", StringComparison.Ordinal))
        {
            // Not a zip: a pickle from torch.save(..., _use_new_zipfile_serialization=False) or before PyTorch 1.6, or no checkpoint at all.
            throw new InvalidDataException(
                "The file is neither a torch.save pickle of a state_dict nor a safetensors file (torch.save's zip format, the default since PyTorch 1.6, is read; "
                + "the legacy format of _use_new_zipfile_serialization=False is not). " + HowToExport, e);
        }
        catch (NotImplementedException e) when (e.Message.Contains("entire model", StringComparison.Ordinal))
        {
            throw new InvalidDataException(
                "The file holds a whole pickled model (torch.save(model, path)), not a state_dict; only state_dicts are read (a pickled model needs its Python classes). "
                + HowToExport, e);
        }
        catch (Exception e) when (e is InvalidDataException or Razorvine.Pickle.PickleException or InvalidCastException or KeyNotFoundException or IndexOutOfRangeException or EndOfStreamException)
        {
            throw new InvalidDataException($"The file is neither a torch.save pickle of a state_dict nor a safetensors file ({e.GetType().Name}: {e.Message}). " + HowToExport, e);
        }
    }

    /// <summary>The names of a pickled state dict with their values; anything that is not a tensor is refused, naming the keys.</summary>
    private static Dictionary<string, T> FromPickle<T>(Hashtable table, Func<object?, T?> value, Action<Dictionary<string, T>> dispose)
        where T : class
    {
        var result = new Dictionary<string, T>(StringComparer.Ordinal);
        var nonTensors = new List<string>();
        foreach (DictionaryEntry entry in table)
        {
            var key = entry.Key as string ?? Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? string.Empty;
            if (value(entry.Value) is { } item)
            {
                result.Add(key, item);
            }
            else
            {
                nonTensors.Add(key);
            }
        }

        if (nonTensors.Count > 0)
        {
            dispose(result);
            throw new InvalidDataException(
                $"Expected a state_dict (names to tensors), as torch.save(model.state_dict(), path) writes; "
                + $"'{string.Join("', '", nonTensors.Take(5))}' hold other objects (a whole training checkpoint? save its model's state_dict, e.g. torch.save(checkpoint[\"state_dict\"], \"weights.pth\")). "
                + HowToExport);
        }
        return result;
    }

    private const string HowToExport =
        "In Python: model = torchvision.models.vgg16(weights=\"DEFAULT\") (or your trained model); torch.save(model.state_dict(), \"vgg16.pth\"); then train --backbone vgg16.pth.";
}
