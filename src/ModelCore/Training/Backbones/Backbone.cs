using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// A feature extractor: image batch (N, 3, H, W) in, pooled features (N, <see cref="NumFeatures"/>) out.
/// The classification head is a separate module (timm's backbone/head split), so a backbone can be
/// frozen, cached or exported on its own.
/// </summary>
public abstract class Backbone(string name) : nn.Module<Tensor, Tensor>(name)
{
    /// <summary>Width of the pooled feature vector (of all <see cref="PooledStages"/> stages).</summary>
    public abstract int NumFeatures { get; }

    /// <summary>
    /// Pool the outputs of the last this-many stages and concatenate them, last stage first (1: only the
    /// last stage). Set by <see cref="Models.ImageClassifier"/> from its head's <c>HeadSpec.PooledStages</c>.
    /// </summary>
    public int PooledStages
    {
        get => pooledStages;
        internal set => pooledStages = value >= 1 && value <= StageNames.Count
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"PooledStages must be 1..{StageNames.Count}.");
    }

    private int pooledStages = 1;

    /// <summary>Names of the stages that can be unfrozen for fine-tuning, from the input side to the output side.</summary>
    public abstract IReadOnlyList<string> StageNames { get; }

    /// <summary>The pooled features; same as <c>forward</c>.</summary>
    public Tensor ForwardFeatures(Tensor images) => forward(images);
}
