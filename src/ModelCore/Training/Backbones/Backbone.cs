using ServerlessClassifier.ModelCore.Export;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// A feature extractor: image batch (N, 3, H, W) in, the input of the classifier layer the head
/// replaces out (N, <see cref="NumFeatures"/>). The classification head is a separate module (timm's
/// backbone/head split), so a backbone can be frozen, cached or exported on its own. Every backbone
/// module has torchvision's parameter names; what differs between architectures is described by its
/// <see cref="BackboneArchitecture"/> entry.
/// </summary>
public abstract class Backbone(string name) : nn.Module<Tensor, Tensor>(name)
{
    /// <summary>The registry entry this module implements.</summary>
    public abstract BackboneArchitecture Architecture { get; }

    /// <summary>Width of the features (of all <see cref="PooledStages"/> stages).</summary>
    public abstract int NumFeatures { get; }

    /// <summary>
    /// Pool the outputs of the last this-many stages and concatenate them, last stage first (1: only the
    /// usual features). Set by <see cref="Models.ImageClassifier"/> from its head's <c>HeadSpec.PooledStages</c>;
    /// at most <see cref="BackboneArchitecture.MaxPooledStages"/>.
    /// </summary>
    public int PooledStages
    {
        get => pooledStages;
        internal set => pooledStages = value >= 1 && value <= Architecture.MaxPooledStages
            ? value
            : throw new ArgumentOutOfRangeException(nameof(value), value, $"PooledStages must be 1..{Architecture.MaxPooledStages} for {Architecture.Name}.");
    }

    private int pooledStages = 1;

    /// <summary>Names of the stages that can be unfrozen for fine-tuning, from the input side to the output side.</summary>
    public IReadOnlyList<string> StageNames => Architecture.StageNames;

    /// <summary>
    /// The backbone's modules, each with its stage (every parameter is in exactly one part): what
    /// finetune trains for <c>--unfreeze</c>, and what stays frozen.
    /// </summary>
    public abstract IReadOnlyList<BackbonePart> Parts();

    /// <summary>The features; same as <c>forward</c>.</summary>
    public Tensor ForwardFeatures(Tensor images) => forward(images);

    /// <summary>
    /// Adds this backbone's ONNX nodes (parameters named <c>backbone.</c> + torchvision's name) from
    /// <paramref name="input"/> (N, 3, inputSize, inputSize) to the features; returns the features' value name.
    /// </summary>
    internal abstract string EmitOnnx(OnnxGraphBuilder graph, string input, int inputSize);

    /// <summary>
    /// As <see cref="EmitOnnx"/>, and the feature maps whose global average pools the features are, in the features'
    /// order (what an exact class activation map reads); empty when the features are not such pools (VGG and AlexNet:
    /// their features come out of fully connected layers).
    /// </summary>
    internal virtual (string Features, IReadOnlyList<PooledMap> Maps) EmitOnnxWithMaps(OnnxGraphBuilder graph, string input, int inputSize) =>
        (EmitOnnx(graph, input, inputSize), []);
}
