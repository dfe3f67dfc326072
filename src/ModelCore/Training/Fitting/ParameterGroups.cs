using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Plans;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>What trains at which rate, what stays frozen, and weight snapshots for the best epoch.</summary>
internal static class ParameterGroups
{
    /// <summary>
    /// Train mode for what trains; eval mode for every frozen part, so frozen BatchNorm layers keep
    /// using (and never update) their running statistics; with <paramref name="freezeBatchNorm"/> every
    /// backbone BatchNorm layer does (<see cref="EpochPlan.UpdateBatchNormStatistics"/> false).
    /// </summary>
    public static void SetTrainMode(ImageClassifier model, nn.Module net, IReadOnlyList<nn.Module> frozen, bool freezeBatchNorm)
    {
        model.eval();
        net.train();
        foreach (var module in frozen)
        {
            module.eval();
        }
        if (freezeBatchNorm)
        {
            foreach (var (_, module) in model.Backbone.named_modules())
            {
                if (module is BatchNorm2d)
                {
                    module.eval();
                }
            }
        }
    }

    public sealed record Group(IReadOnlyList<Parameter> Parameters, double LearningRate);

    /// <summary>
    /// The head at LearningRate. Finetune: plus the stages of the plan at LearningRate x
    /// BackboneLrFactor. Full: the last stage at LearningRate x BackboneLrFactor, each earlier stage at half
    /// the next one's rate, the stem (for a ResNet conv1 and bn1) at half of the first stage's. Returns the
    /// frozen backbone modules too (the backbone's <see cref="Backbones.Backbone.Parts"/> that do not train).
    /// </summary>
    public static (List<Group> Groups, List<nn.Module> Frozen) Create(ImageClassifier model, EpochPlan plan)
    {
        var groups = new List<Group> { new([.. model.Head.parameters()], plan.LearningRate) };
        var parts = model.Backbone.Parts();
        var stages = model.Backbone.StageNames;
        var trainable = new HashSet<string>(StringComparer.Ordinal);
        var backboneRate = plan.LearningRate * plan.BackboneLrFactor;
        var full = plan is FullPlan;
        trainable.UnionWith(plan is FinetunePlan finetune ? finetune.Stages : stages);
        var rate = backboneRate;
        foreach (var stage in stages.Reverse().Where(trainable.Contains))
        {
            groups.Add(new Group([.. parts.Where(p => p.Stage == stage).SelectMany(p => p.Module.parameters())], full ? rate : backboneRate));
            rate /= 2;
        }
        var stemTrains = full;
        if (stemTrains)
        {
            var stem = parts.Where(p => p.Stage is null).SelectMany(p => p.Module.parameters()).ToList();
            if (stem.Count > 0)
            {
                groups.Add(new Group(stem, rate));
            }
        }
        var frozen = parts.Where(p => p.Stage is null ? !stemTrains : !trainable.Contains(p.Stage)).Select(p => p.Module).ToList();
        return (groups, frozen);
    }

    /// <summary>AdamW (decoupled weight decay) over the groups, each at its own rate.</summary>
    public static optim.Optimizer CreateOptimizer(List<Group> groups, EpochPlan plan) => optim.AdamW(
        groups.Select(g => new AdamW.ParamGroup(g.Parameters, new AdamW.Options { LearningRate = g.LearningRate, weight_decay = plan.WeightDecay })),
        plan.LearningRate, weight_decay: plan.WeightDecay);

    public static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().clone(), StringComparer.Ordinal);

    public static Dictionary<string, Tensor> Clone(IReadOnlyDictionary<string, Tensor> weights) =>
        weights.ToDictionary(p => p.Key, p => p.Value.clone(), StringComparer.Ordinal);

    public static void Replace(ref Dictionary<string, Tensor> current, Dictionary<string, Tensor> next)
    {
        foreach (var tensor in current.Values)
        {
            tensor.Dispose();
        }
        current = next;
    }

    public static void Restore(nn.Module module, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in module.state_dict())
        {
            tensor.copy_(weights[name]);
        }
    }
}
