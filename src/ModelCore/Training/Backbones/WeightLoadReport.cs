namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>
/// What a torchvision weight import did: the architecture loaded. <paramref name="Missing"/>: our parameter names that kept
/// their initial values (a new head; <c>num_batches_tracked</c> buffers absent from old checkpoints).
/// <paramref name="Unexpected"/>: checkpoint keys that were ignored because our model has no such
/// buffer (only <c>num_batches_tracked</c>; any other unknown key is an error).
/// <paramref name="DroppedHeadKeys"/>: the replaced layer's keys (<c>fc.*</c>, <c>classifier.6.*</c>, ...), not loaded because our
/// head differs (another class count); timm drops only these too.
/// </summary>
public sealed record WeightLoadReport(
    BackboneArchitecture Architecture,
    IReadOnlyList<string> Missing,
    IReadOnlyList<string> Unexpected,
    IReadOnlyList<string> DroppedHeadKeys);
