using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Backbones;

/// <summary>One module of a backbone and the <c>--unfreeze</c> stage it trains with (null: the stem, which only full mode trains).</summary>
public sealed record BackbonePart(string? Stage, nn.Module Module);
