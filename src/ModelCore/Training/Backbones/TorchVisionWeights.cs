using System.Globalization;
using System.Text.RegularExpressions;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

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
        return WithStateDict(ReadStateDict(path), stateDict =>
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
        });
    }

    /// <summary>Runs <paramref name="use"/> on a state dict this class read, then disposes its tensors.</summary>
    private static T WithStateDict<T>(Dictionary<string, Tensor> stateDict, Func<Dictionary<string, Tensor>, T> use)
    {
        try
        {
            return use(stateDict);
        }
        finally
        {
            DisposeAll(stateDict);
        }
    }

    /// <summary>Loads a checkpoint file into <paramref name="model"/> (created on the CPU).</summary>
    public static WeightLoadReport Load(ImageClassifier model, string path) => WithStateDict(ReadStateDict(path), d => Load(model, d));

    /// <summary>Loads a checkpoint from a stream (a blob download, say) into <paramref name="model"/>.</summary>
    public static WeightLoadReport Load(ImageClassifier model, Stream stream) => WithStateDict(ReadStateDict(stream), d => Load(model, d));

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
