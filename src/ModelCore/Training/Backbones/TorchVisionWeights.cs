using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// Imports torchvision <c>state_dict</c>s (a <c>torch.save</c> pickle, <c>.pth</c>, or a safetensors
/// file) of every architecture in <see cref="BackboneCatalog"/> into an <see cref="ImageClassifier"/>,
/// and exports ours under torchvision's names. The one key map, from the architecture's entry: the
/// replaced layer's <c>weight</c> and <c>bias</c> (<c>fc</c>, <c>classifier.6</c>, <c>classifier</c>)
/// are <c>head.fc.*</c> of a <see cref="LinearHead"/> with the same class count, and are dropped (and
/// reported) otherwise; every other key is <c>backbone.</c> + the key. Anything that does not fit (a
/// missing or unknown backbone key, a shape that differs) is an <see cref="InvalidDataException"/>
/// naming the key and both shapes.
/// </summary>
public static partial class TorchVisionWeights
{
    private const string BackbonePrefix = "backbone.";
    private const string HeadPrefix = "head.fc.";
    private const string BatchCounter = "num_batches_tracked";
    private static readonly string[] HeadParameters = ["weight", "bias"];

    /// <summary>
    /// Builds the classifier the checkpoint's keys describe (architecture detected) and loads it. The head
    /// reads at most the architecture's <see cref="BackboneArchitecture.MaxPooledStages"/> stages.
    /// </summary>
    public static LoadedClassifier CreateClassifier(string path, HeadSpec head)
    {
        ArgumentNullException.ThrowIfNull(head);
        return WithStateDict(ReadStateDict(path), stateDict =>
        {
            var architecture = DetectArchitecture(stateDict);
            var model = new ImageClassifier(architecture.Create(), architecture.Fit(head));
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
        var architecture = model.Backbone.Architecture;
        var source = Canonical(stateDict, architecture);
        var target = model.state_dict();
        var fileArchitecture = BackboneCatalog.Detect(Shapes(source));
        var architectureNote = fileArchitecture is null || fileArchitecture == architecture
            ? string.Empty
            : $" (the checkpoint's keys describe {fileArchitecture.Name})";

        // Does the checkpoint's replaced layer fit our head? Only a linear head with the same shapes takes it.
        var headFits = model.Head is LinearHead && HeadParameters.All(parameter =>
            source.TryGetValue(architecture.HeadKey(parameter), out var tensor)
            && target.TryGetValue(HeadPrefix + parameter, out var ours)
            && tensor.shape.SequenceEqual(ours.shape));

        var copies = new List<(Tensor Target, Tensor Source)>();
        var problems = new List<string>();
        var unexpected = new List<string>();
        var dropped = new List<string>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (key, tensor) in source.OrderBy(pair => pair.Key, StringComparer.Ordinal))
        {
            var isHeadKey = architecture.IsHeadKey(key);
            if (isHeadKey && !headFits)
            {
                dropped.Add(key);
                continue;
            }

            var ourName = isHeadKey ? HeadPrefix + key[(architecture.ReplacedLayer.Length + 1)..] : BackbonePrefix + key;
            if (!target.TryGetValue(ourName, out var ours))
            {
                if (key.EndsWith(BatchCounter, StringComparison.Ordinal))
                {
                    unexpected.Add(key);
                }
                else
                {
                    problems.Add($"unexpected key '{key}' (no '{ourName}' in {architecture.Name})");
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

        // In the model's own order (stem first), so the first missing key named is the telling one.
        var missing = new List<string>();
        foreach (var ourName in target.Keys.Where(name => !seen.Contains(name)))
        {
            var isHead = ourName.StartsWith("head.", StringComparison.Ordinal);
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
                $"The checkpoint does not fit a torchvision {architecture.Name} backbone{architectureNote}: "
                + string.Join("; ", problems.Take(shown)) + more + ".");
        }

        using (no_grad())
        {
            foreach (var (ours, tensor) in copies)
            {
                ours.copy_(tensor);
            }
        }

        return new WeightLoadReport(architecture, missing, unexpected, dropped);
    }

    /// <summary>The architecture a state dict's keys and shapes describe; throws naming what they describe when it is none of the registry's.</summary>
    public static BackboneArchitecture DetectArchitecture(IReadOnlyDictionary<string, Tensor> stateDict)
    {
        ArgumentNullException.ThrowIfNull(stateDict);
        return DetectArchitecture(Shapes(stateDict));
    }

    /// <inheritdoc cref="DetectArchitecture(IReadOnlyDictionary{string, Tensor})"/>
    public static BackboneArchitecture DetectArchitecture(IReadOnlyDictionary<string, long[]> shapes)
    {
        ArgumentNullException.ThrowIfNull(shapes);
        var stripped = StripDataParallelPrefix(shapes);
        if (BackboneCatalog.Detect(stripped) is { } architecture)
        {
            return architecture;
        }
        var found = BackboneCatalog.FoundLayouts(stripped);
        var described = found.Count > 0
            ? "found " + string.Join("; or ", found)
            : $"its {stripped.Count} keys, first in name order, are {string.Join(", ", stripped.Keys.Order(StringComparer.Ordinal).Take(4).Select(k => $"'{k}'"))}";
        throw new InvalidDataException(
            $"The checkpoint's keys and shapes match no supported torchvision architecture ({string.Join(", ", BackboneCatalog.TorchVisionIds)}): {described}. "
            + "Pass the state_dict of one of these, saved unchanged from torchvision (e.g. torch.save(torchvision.models.vgg16(weights=\"DEFAULT\").state_dict(), \"vgg16.pth\")); "
            + "a model whose backbone was changed cannot be imported.");
    }

    /// <summary>The keys as this torchvision names them: <c>nn.DataParallel</c>'s <c>module.</c> removed, older names renamed.</summary>
    private static Dictionary<string, Tensor> Canonical(IReadOnlyDictionary<string, Tensor> stateDict, BackboneArchitecture architecture) =>
        StripDataParallelPrefix(stateDict).ToDictionary(pair => architecture.CanonicalKey(pair.Key), pair => pair.Value, StringComparer.Ordinal);

    private static Dictionary<string, long[]> Shapes(IReadOnlyDictionary<string, Tensor> stateDict) =>
        stateDict.ToDictionary(pair => pair.Key, pair => pair.Value.shape, StringComparer.Ordinal);

    /// <summary>Checkpoints saved from <c>nn.DataParallel</c> prefix every key with <c>module.</c>.</summary>
    private static IReadOnlyDictionary<string, T> StripDataParallelPrefix<T>(IReadOnlyDictionary<string, T> stateDict)
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
}
