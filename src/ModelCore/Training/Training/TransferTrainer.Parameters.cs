using ServerlessClassifier.ModelCore.Backbones;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using SixLabors.ImageSharp.PixelFormats;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>What trains at which rate, what stays frozen, and weight snapshots for the best epoch.</summary>
public sealed partial class TransferTrainer
{
    /// <summary>
    /// Train mode for what trains; eval mode for every frozen part, so frozen BatchNorm layers keep
    /// using (and never update) their running statistics; with <paramref name="freezeBatchNorm"/> every
    /// backbone BatchNorm layer does (<see cref="TrainingOptions.UpdateBatchNormStatistics"/> false).
    /// </summary>
    private static void SetTrainMode(ImageClassifier model, nn.Module net, IReadOnlyList<nn.Module> frozen, bool freezeBatchNorm)
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

    private sealed record Group(IReadOnlyList<Parameter> Parameters, double LearningRate);

    /// <summary>
    /// Head: the head at LearningRate. Finetune: plus the stages named in UnfreezeStages at LearningRate x
    /// BackboneLrFactor. Full: the last stage at LearningRate x BackboneLrFactor, each earlier stage at half
    /// the next one's rate, the stem (for a ResNet conv1 and bn1) at half of the first stage's. Returns the
    /// frozen backbone modules too (the backbone's <see cref="Backbones.Backbone.Parts"/> that do not train).
    /// </summary>
    private static (List<Group> Groups, List<nn.Module> Frozen) ParameterGroups(ImageClassifier model, TrainingOptions options)
    {
        var groups = new List<Group> { new([.. model.Head.parameters()], options.LearningRate) };
        var parts = model.Backbone.Parts();
        var stages = model.Backbone.StageNames;
        var trainable = new HashSet<string>(StringComparer.Ordinal);
        var backboneRate = options.LearningRate * options.BackboneLrFactor;
        if (options.Mode == TrainingMode.Finetune)
        {
            var unknown = options.UnfreezeStages.FirstOrDefault(s => !stages.Contains(s, StringComparer.Ordinal));
            if (unknown is not null)
            {
                throw new ArgumentException($"Unfreeze stage \"{unknown}\" is not a stage of {model.Backbone.Architecture.Name}; its stages are {string.Join(", ", stages)}.", nameof(options));
            }
            trainable.UnionWith(options.UnfreezeStages);
        }
        else if (options.Mode == TrainingMode.Full)
        {
            trainable.UnionWith(stages);
        }
        var rate = backboneRate;
        foreach (var stage in stages.Reverse().Where(trainable.Contains))
        {
            groups.Add(new Group([.. parts.Where(p => p.Stage == stage).SelectMany(p => p.Module.parameters())], options.Mode == TrainingMode.Full ? rate : backboneRate));
            rate /= 2;
        }
        var stemTrains = options.Mode == TrainingMode.Full;
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

    private static optim.Optimizer CreateOptimizer(List<Group> groups, TrainingOptions options) => options.Optimizer switch
    {
        OptimizerKind.AdamW => optim.AdamW(
            groups.Select(g => new AdamW.ParamGroup(g.Parameters, new AdamW.Options { LearningRate = g.LearningRate, weight_decay = options.WeightDecay })),
            options.LearningRate, weight_decay: options.WeightDecay),
        OptimizerKind.Sgd => optim.SGD(
            groups.Select(g => new SGD.ParamGroup(g.Parameters, new SGD.Options { LearningRate = g.LearningRate, momentum = 0.9, weight_decay = options.WeightDecay })),
            options.LearningRate, momentum: 0.9, weight_decay: options.WeightDecay),
        _ => throw new ArgumentOutOfRangeException(nameof(options), options.Optimizer, "Unknown optimizer."),
    };

    private static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(p => p.Key, p => p.Value.detach().cpu().clone(), StringComparer.Ordinal);

    private static void Replace(ref Dictionary<string, Tensor> current, Dictionary<string, Tensor> next)
    {
        foreach (var tensor in current.Values)
        {
            tensor.Dispose();
        }
        current = next;
    }

    private static void Restore(nn.Module module, Dictionary<string, Tensor> weights)
    {
        using var noGrad = no_grad();
        foreach (var (name, tensor) in module.state_dict())
        {
            tensor.copy_(weights[name]);
        }
    }
}
