using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Prefix;

/// <summary>
/// A ResNet classifier from its cached frozen prefix on: the output of <see cref="TorchVisionResNet.ForwardPrefix"/>(images,
/// <see cref="Start"/>) in, logits out (the stages from <see cref="Start"/>, the pooling, the head). It holds the
/// classifier's own backbone and head under the classifier's names, so its parameters and <c>state_dict</c> are the
/// classifier's: what a fine-tune on the cached prefix trains, checkpoints and restores.
/// </summary>
internal sealed class SuffixClassifier : nn.Module<Tensor, Tensor>
{
    private readonly TorchVisionResNet backbone;
    private readonly ClassifierHead head;

    public SuffixClassifier(ImageClassifier model, int start) : base(nameof(SuffixClassifier))
    {
        ArgumentNullException.ThrowIfNull(model);
        backbone = model.Backbone as TorchVisionResNet
            ?? throw new ArgumentException($"A cached frozen prefix needs a ResNet backbone; got {model.Backbone.Architecture.Name}.", nameof(model));
        ArgumentOutOfRangeException.ThrowIfLessThan(start, 1);
        if (!backbone.SuffixCanPool(start))
        {
            throw new ArgumentOutOfRangeException(nameof(start), start, $"the head pools {backbone.PooledStages} stages, more than the suffix from stage {start} sees.");
        }
        head = model.Head;
        Start = start;
        RegisterComponents();
    }

    /// <summary>The 0-based stage the suffix starts at (the first one that trains).</summary>
    public int Start { get; }

    /// <summary>The backbone's features from prefix outputs (what the head reads).</summary>
    public Tensor Features(Tensor prefixOutput) => backbone.ForwardSuffix(prefixOutput, Start);

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return head.call(Features(input)).MoveToOuterDisposeScope();
    }
}
