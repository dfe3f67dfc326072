using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Backbones;

namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>Full mode: every stage and the stem train, with learning rates that halve stage by stage towards the input (discriminative rates).</summary>
public sealed record FullPlan : EpochPlan
{
    [JsonIgnore]
    public override TrainingMode Mode => TrainingMode.Full;

    private protected override EpochPlan ResolveStages(BackboneArchitecture architecture) => this;
}
