using ServerlessClassifier.ModelCore.Plans;
namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>Finetune settings the benchmark compares (<c>--finetune --variants a,b</c>): the default and one change each.</summary>
internal static class FinetuneVariants
{
    private static readonly FinetunePlan Default = new();

    public static IReadOnlyDictionary<string, TrainingPlan> All { get; } = new Dictionary<string, TrainingPlan>(StringComparer.Ordinal)
    {
        ["default"] = Default,
        ["random-head"] = Default with { Start = HeadStart.Random },
        ["bn-frozen"] = Default with { UpdateBatchNormStatistics = false },
        ["bn-updated"] = Default with { UpdateBatchNormStatistics = true },
        ["views-1"] = Default with { PrefixViews = 1 },
        ["views-8"] = Default with { PrefixViews = 8 },
        ["no-cache"] = Default with { PrefixViews = 0 },
        ["layer4-only"] = Default with { PooledStages = 1 },
        ["no-smoothing"] = Default with { LabelSmoothing = 0 },
        ["lr-3e-4"] = Default with { LearningRate = 3e-4 },
        ["crop-0.85"] = Default with { CropScaleMin = 0.85 },
        ["layer3-4"] = Default with { Stages = ["layer3", "layer4"] },
    };
}
