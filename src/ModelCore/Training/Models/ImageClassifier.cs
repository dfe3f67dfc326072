using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Heads;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Models;

/// <summary>
/// Backbone plus head: images (N, 3, H, W) in, logits (N, classes) out. Parameter names are
/// <c>backbone.*</c> and <c>head.*</c>; a torchvision state_dict maps onto them by prefix
/// (see the torchvision weight loader).
/// </summary>
public sealed class ImageClassifier : nn.Module<Tensor, Tensor>
{
    private readonly Backbone backbone;
    private ClassifierHead head;

    public ImageClassifier(Backbone backbone, HeadSpec headSpec) : base(nameof(ImageClassifier))
    {
        this.backbone = backbone;
        HeadSpec = headSpec;
        backbone.PooledStages = headSpec.PooledStages;
        head = headSpec.Create(backbone.NumFeatures);
        RegisterComponents();
    }

    public Backbone Backbone => backbone;

    public ClassifierHead Head => head;

    public HeadSpec HeadSpec { get; private set; }

    public int NumClasses => head.NumClasses;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return head.call(backbone.call(input)).MoveToOuterDisposeScope();
    }

    /// <summary>Replaces the head with a freshly initialised one (a new label set); the backbone is kept.</summary>
    public void ResetHead(HeadSpec headSpec)
    {
        var old = head;
        backbone.PooledStages = headSpec.PooledStages;
        head = headSpec.Create(backbone.NumFeatures);
        // register_module refuses a name that is taken, and Module has no public way to drop one.
        _internal_submodules.Remove(nameof(head));
        register_module(nameof(head), head);
        HeadSpec = headSpec;
        old.Dispose();
    }
}
