using ServerlessClassifier.ModelCore.Backbones;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// Which architectures of the registry the per-architecture tests run, in the test pyramid of scripts/test.sh: every
/// run takes the first (smallest) member of each family and variant (a ResNet of basic blocks and one of
/// bottlenecks, a VGG with and one without BatchNorm, AlexNet, a DenseNet), which runs every code path of the
/// registry's modules, exporters and loaders, and trains each family once per CLI mode; the full run
/// (<c>scripts/test.sh --full</c>, the <see cref="Full"/> trait) adds every other entry at full size, in every mode.
/// </summary>
public static class ArchitectureMatrix
{
    /// <summary>The trait of the tests that only the full run takes: <c>[Trait(Category, Full)]</c>.</summary>
    public const string Category = "Category";

    /// <summary>The value of <see cref="Category"/> for the full run's tests; every run filters them out (<c>Category!=Full</c>).</summary>
    public const string Full = "Full";

    /// <summary>What sets an architecture's code paths apart: its family, and within it the block kind or BatchNorm.</summary>
    public static string Variant(BackboneArchitecture architecture) => architecture switch
    {
        ResNetArchitecture resnet => $"{resnet.Family} {resnet.Block}",
        VggArchitecture vgg => $"{vgg.Family} {(vgg.BatchNorm ? "BatchNorm" : "plain")}",
        _ => architecture.Family,
    };

    /// <summary>The first registry entry of each <see cref="Variant"/>: resnet18, resnet50, vgg11, vgg11_bn, alexnet, densenet121.</summary>
    public static IReadOnlyList<string> EveryRun { get; } = [.. BackboneCatalog.TorchVisionIds.GroupBy(id => Variant(BackboneCatalog.Architecture(id))).Select(g => g.First())];

    /// <summary>The other torchvision entries, for the full run.</summary>
    public static IReadOnlyList<string> FullOnly { get; } = [.. BackboneCatalog.TorchVisionIds.Except(EveryRun)];

    /// <summary>The CLI training modes each architecture is trained in (<c>train --mode</c>).</summary>
    public static IReadOnlyList<string> TrainingModes { get; } = ["head", "finetune"];

    /// <summary>
    /// The every-run CLI trainings: each family once per mode, its variants taking the modes in turn (resnet18 head,
    /// resnet50 finetune; vgg11 head, vgg11_bn finetune; AlexNet and DenseNet, one variant each, in both), so every
    /// variant is trained and every mode runs on every family.
    /// </summary>
    public static IReadOnlyList<(string Id, string Mode)> EveryRunTraining { get; } =
    [
        .. TrainingModes.SelectMany((mode, m) => EveryRun.GroupBy(id => BackboneCatalog.Architecture(id).Family)
            .Select(family => (family.ElementAt(m % family.Count()), mode))),
    ];

    /// <summary>Every other architecture and mode, for the full run.</summary>
    public static IReadOnlyList<(string Id, string Mode)> FullOnlyTraining { get; } =
        [.. BackboneCatalog.TorchVisionIds.SelectMany(id => TrainingModes.Select(mode => (id, mode))).Except(EveryRunTraining)];

    public static TheoryData<string> EveryRunData => new(EveryRun);

    public static TheoryData<string> FullOnlyData => new(FullOnly);

    public static TheoryData<string, string> EveryRunTrainingData => Pairs(EveryRunTraining);

    public static TheoryData<string, string> FullOnlyTrainingData => Pairs(FullOnlyTraining);

    private static TheoryData<string, string> Pairs(IEnumerable<(string Id, string Mode)> pairs)
    {
        var data = new TheoryData<string, string>();
        foreach (var (id, mode) in pairs)
        {
            data.Add(id, mode);
        }
        return data;
    }
}
