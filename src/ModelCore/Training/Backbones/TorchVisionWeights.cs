using System.Collections;
using System.Globalization;
using System.Text.RegularExpressions;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// What a torchvision weight import did. <paramref name="Missing"/>: our parameter names that kept
/// their initial values (a new head; <c>num_batches_tracked</c> buffers absent from old checkpoints).
/// <paramref name="Unexpected"/>: checkpoint keys that were ignored because our model has no such
/// buffer (only <c>num_batches_tracked</c>; any other unknown key is an error).
/// <paramref name="DroppedHeadKeys"/>: the checkpoint's <c>fc.*</c> keys, not loaded because our
/// head differs (another class count, or an MLP head); timm drops only these too.
/// </summary>
public sealed record WeightLoadReport(
    ResNetArchitecture Architecture,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> DroppedHeadKeys);

/// <summary>A classifier built from a checkpoint, with the report of what was loaded.</summary>
public sealed record LoadedClassifier(ImageClassifier Model, WeightLoadReport Report);

/// <summary>
/// Imports torchvision ResNet-18/34/50 <c>state_dict</c>s (a <c>torch.save</c> pickle, <c>.pth</c>, or
/// a safetensors file) into an <see cref="ImageClassifier"/> over a <see cref="TorchVisionResNet"/>,
/// and exports ours under torchvision's names. The one key map: <c>conv1.*</c>, <c>bn1.*</c>,
/// <c>layerN.*</c> are <c>backbone.*</c>; <c>fc.weight</c> and <c>fc.bias</c> are <c>head.fc.*</c>
/// of a <see cref="LinearHead"/> with the same class count, and are dropped (and reported) otherwise.
/// Anything else that does not fit (a missing or unknown backbone key, a shape that differs) is an
/// <see cref="InvalidDataException"/> naming the key and both shapes.
/// </summary>
public static partial class TorchVisionWeights
{
    private const string BackbonePrefix = "backbone.";
    private const string HeadPrefix = "head.";
    private const string BatchCounter = "num_batches_tracked";
    private static readonly string[] TorchVisionHeadKeys = ["fc.weight", "fc.bias"];

    /// <summary>Builds the classifier the checkpoint's keys describe (architecture detected) and loads it.</summary>
    public static LoadedClassifier CreateClassifier(string path, HeadSpec head)
    {
        ArgumentNullException.ThrowIfNull(head);
        var stateDict = ReadStateDict(path);
        try
        {
            var model = new ImageClassifier(new TorchVisionResNet(DetectArchitecture(stateDict.Keys)), head);
            try
            {
                return new LoadedClassifier(model, Load(model, stateDict));
            }
            catch
            {
                model.Dispose();
                throw;
            }
        }
        finally
        {
            DisposeAll(stateDict);
        }
    }

    /// <summary>Loads a checkpoint file into <paramref name="model"/> (created on the CPU).</summary>
    public static WeightLoadReport Load(ImageClassifier model, string path)
    {
        var stateDict = ReadStateDict(path);
        try
        {
            return Load(model, stateDict);
        }
        finally
        {
            DisposeAll(stateDict);
        }
    }

    /// <summary>Loads a checkpoint from a stream (a blob download, say) into <paramref name="model"/>.</summary>
    public static WeightLoadReport Load(ImageClassifier model, Stream stream)
    {
        var stateDict = ReadStateDict(stream);
        try
        {
            return Load(model, stateDict);
        }
        finally
        {
            DisposeAll(stateDict);
        }
    }

    /// <summary>
    /// Loads torchvision-named tensors into <paramref name="model"/>. Validates everything before it
    /// changes anything, so a failed load leaves the model as it was. The caller keeps ownership of
    /// the dictionary's tensors.
    /// </summary>
    public static WeightLoadReport Load(ImageClassifier model, IReadOnlyDictionary<string, Tensor> stateDict)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(stateDict);
        if (model.Backbone is not TorchVisionResNet resnet)
        {
            throw new ArgumentException($"torchvision weights need a {nameof(TorchVisionResNet)} backbone, not {model.Backbone.GetType().Name}.", nameof(model));
        }

        var source = StripDataParallelPrefix(stateDict);
        var target = model.state_dict();
        var fileArchitecture = TryDetectArchitecture(source.Keys);
        var architectureNote = fileArchitecture is null || fileArchitecture == resnet.Architecture
            ? string.Empty
            : $" (the checkpoint's keys describe {fileArchitecture.Name})";

        // Does the checkpoint's fc fit our head? Only a linear head with the same shapes takes it.
        var headFits = model.Head is LinearHead && TorchVisionHeadKeys.All(key =>
            source.TryGetValue(key, out var tensor)
            && target.TryGetValue(HeadPrefix + key, out var ours)
            && tensor.shape.SequenceEqual(ours.shape));

        var copies = new List<(Tensor Target, Tensor Source)>();
        var problems = new List<string>();
        var unexpected = new List<string>();
        var dropped = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, tensor) in source.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            var isHeadKey = key.StartsWith("fc.", StringComparison.Ordinal);
            if (isHeadKey && !headFits)
            {
                dropped.Add(key);
                continue;
            }

            var ourName = (isHeadKey ? HeadPrefix : BackbonePrefix) + key;
            if (!target.TryGetValue(ourName, out var ours))
            {
                if (key.EndsWith(BatchCounter, StringComparison.Ordinal))
                {
                    unexpected.Add(key);
                }
                else
                {
                    problems.Add($"unexpected key '{key}' (no '{ourName}' in {resnet.Architecture.Name})");
                }
                continue;
            }

            // Seen, loadable or not: a key with the wrong shape is reported as that, not also as missing.
            seen.Add(ourName);
            if (!tensor.shape.SequenceEqual(ours.shape))
            {
                problems.Add($"shape mismatch for '{key}': checkpoint {FormatShape(tensor.shape)}, model {FormatShape(ours.shape)}");
                continue;
            }

            copies.Add((ours, tensor));
        }

        // In the model's own order (stem, then layer1.0, ...), so the first missing key named is the telling one.
        var missing = new List<string>();
        foreach (var ourName in target.Keys.Where(name => !seen.Contains(name)))
        {
            var isHead = ourName.StartsWith(HeadPrefix, StringComparison.Ordinal);
            if (isHead || ourName.EndsWith(BatchCounter, StringComparison.Ordinal))
            {
                missing.Add(ourName);
            }
            else
            {
                problems.Add($"missing key '{ourName[BackbonePrefix.Length..]}'");
            }
        }

        if (problems.Count > 0)
        {
            const int shown = 8;
            var more = problems.Count > shown ? $"; and {problems.Count - shown} more" : string.Empty;
            throw new InvalidDataException(
                $"The checkpoint does not fit a torchvision {resnet.Architecture.Name} backbone{architectureNote}: "
                + string.Join("; ", problems.Take(shown)) + more + ".");
        }

        using (no_grad())
        {
            foreach (var (ours, tensor) in copies)
            {
                ours.copy_(tensor);
            }
        }

        return new WeightLoadReport(resnet.Architecture, missing, unexpected, dropped);
    }

    /// <summary>
    /// The architecture whose block layout the keys describe: blocks per <c>layerN</c> and whether the
    /// blocks are bottlenecks (<c>conv3</c>). Throws naming the layout when it is none of ours.
    /// </summary>
    public static ResNetArchitecture DetectArchitecture(IEnumerable<string> keys) =>
        TryDetectArchitecture(keys, out var layout)
        ?? throw new InvalidDataException(
            $"The checkpoint's keys describe no supported torchvision ResNet ({string.Join(", ", ResNetArchitecture.All.Select(a => a.Name))}): found {layout}.");

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

    private static ResNetArchitecture? TryDetectArchitecture(IEnumerable<string> keys) => TryDetectArchitecture(keys, out _);

    private static ResNetArchitecture? TryDetectArchitecture(IEnumerable<string> keys, out string layout)
    {
        var blocks = new SortedDictionary<int, HashSet<int>>();
        var bottleneck = false;
        foreach (var key in keys)
        {
            var match = BlockKey().Match(key);
            if (!match.Success)
            {
                continue;
            }
            var stage = int.Parse(match.Groups[1].ValueSpan, CultureInfo.InvariantCulture);
            var block = int.Parse(match.Groups[2].ValueSpan, CultureInfo.InvariantCulture);
            if (!blocks.TryGetValue(stage, out var set))
            {
                blocks[stage] = set = [];
            }
            set.Add(block);
            bottleneck |= match.Groups[3].ValueSpan.SequenceEqual("conv3");
        }

        var counts = Enumerable.Range(1, 4).Select(stage => blocks.TryGetValue(stage, out var set) ? set.Count : 0).ToArray();
        var kind = bottleneck ? ResNetBlockKind.Bottleneck : ResNetBlockKind.Basic;
        layout = blocks.Count == 0
            ? "no layerN.M.* keys"
            : $"{kind} blocks [{string.Join(", ", counts)}] in layer1..layer4";
        return ResNetArchitecture.All.FirstOrDefault(a => a.Block == kind && a.Layers.SequenceEqual(counts));
    }

    /// <summary>Checkpoints saved from <c>nn.DataParallel</c> prefix every key with <c>module.</c>.</summary>
    private static IReadOnlyDictionary<string, Tensor> StripDataParallelPrefix(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        const string prefix = "module.";
        return stateDict.Count > 0 && stateDict.Keys.All(key => key.StartsWith(prefix, StringComparison.Ordinal))
            ? stateDict.ToDictionary(pair => pair.Key[prefix.Length..], pair => pair.Value, StringComparer.Ordinal)
            : stateDict;
    }

    private static string FormatShape(long[] shape) => "[" + string.Join(", ", shape) + "]";

    private static void DisposeAll(Dictionary<string, Tensor> tensors)
    {
        foreach (var tensor in tensors.Values)
        {
            tensor.Dispose();
        }
    }

    [GeneratedRegex(@"^(?:module\.)?layer(\d+)\.(\d+)\.([a-z]+\d*)\.")]
    private static partial Regex BlockKey();
}
