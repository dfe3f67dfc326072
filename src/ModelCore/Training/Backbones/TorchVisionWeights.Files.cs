using System.Collections;
using System.Globalization;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>Reading torchvision state dicts (.pth pickles or safetensors) and writing ours under torchvision's names.</summary>
public static partial class TorchVisionWeights
{
    /// <summary>
    /// Our weights under torchvision's names (<c>backbone.</c> removed, <c>head.fc.*</c> as <c>fc.*</c>),
    /// so <c>torchvision.models.resnetNN(num_classes=...).load_state_dict</c> takes them. The tensors are
    /// the model's own: do not dispose them.
    /// </summary>
    public static Dictionary<string, Tensor> ToTorchVisionStateDict(ImageClassifier model)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Head is not LinearHead)
        {
            throw new NotSupportedException($"torchvision's ResNet has a single linear fc layer; a {model.HeadSpec.Kind} head has no torchvision name.");
        }

        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, tensor) in model.state_dict())
        {
            var key = name.StartsWith(BackbonePrefix, StringComparison.Ordinal) ? name[BackbonePrefix.Length..]
                : name.StartsWith(HeadPrefix, StringComparison.Ordinal) ? name[HeadPrefix.Length..]
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
        ArgumentNullException.ThrowIfNull(stream);
        if (!stream.CanSeek)
        {
            // Both readers seek (the zip directory sits at the end of a .pth).
            var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            buffer.Position = 0;
            stream = buffer;
        }

        var start = stream.Position;
        Span<byte> head = stackalloc byte[9];
        var read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
        stream.Position = start;
        if (read == head.Length && head[8] == (byte)'{' && BitConverter.ToUInt64(head[..8]) < int.MaxValue)
        {
            return Safetensors.LoadStateDict(stream, leaveOpen: true);
        }

        var table = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: true);
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        var nonTensors = new List<string>();
        foreach (DictionaryEntry entry in table)
        {
            var key = entry.Key as string ?? Convert.ToString(entry.Key, CultureInfo.InvariantCulture) ?? string.Empty;
            if (entry.Value is Tensor tensor)
            {
                result.Add(key, tensor);
            }
            else
            {
                nonTensors.Add(key);
            }
        }

        if (nonTensors.Count > 0)
        {
            DisposeAll(result);
            throw new InvalidDataException(
                $"Expected a state_dict (names to tensors), as torch.save(model.state_dict(), path) writes; "
                + $"'{string.Join("', '", nonTensors.Take(5))}' hold other objects (a whole training checkpoint? save its model's state_dict).");
        }
        return result;
    }
}
