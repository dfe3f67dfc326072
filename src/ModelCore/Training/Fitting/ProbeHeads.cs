using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Models;
using ServerlessClassifier.ModelCore.Probe;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>What every fit that ends in a linear probe shares: setting the head to it, and describing it.</summary>
internal static class ProbeHeads
{
    /// <summary>The linear head set to a probe's weights (standardisation and temperature folded in).</summary>
    public static void SetHead(ImageClassifier model, ProbeFit fit)
    {
        using var noGrad = no_grad();
        var state = model.Head.state_dict();
        state["fc.weight"].copy_(tensor(fit.Weight, [fit.Bias.Length, fit.Weight.Length / fit.Bias.Length]));
        state["fc.bias"].copy_(tensor(fit.Bias));
    }

    /// <summary>The manifest's description of a probe fitted on <paramref name="images"/> images.</summary>
    public static ProbeSummary Summary(ProbeFit fit, int images, bool mirrored) => new()
    {
        Folds = fit.Folds,
        Lambda = fit.Lambda,
        Grid = fit.Grid,
        ClassWeighted = fit.ClassWeighted,
        FlipFeatures = mirrored,
        Images = images,
        Rows = fit.FinalRows,
        Iterations = fit.FinalOutcome.Iterations,
        Converged = fit.FinalOutcome.Converged,
        Seconds = fit.Seconds,
    };

    /// <summary>Images per label among <paramref name="labels"/> (class indices).</summary>
    public static Dictionary<string, int> Counts(IReadOnlyList<string> classes, IReadOnlyList<int> labels) =>
        classes.Select((l, c) => (l, c)).ToDictionary(x => x.l, x => labels.Count(y => y == x.c), StringComparer.Ordinal);

    /// <summary>Rows <paramref name="rows"/> of an n x classes matrix, in that order.</summary>
    public static double[] Rows(double[] matrix, int classes, IReadOnlyList<int> rows) =>
        [.. rows.SelectMany(i => matrix.AsSpan(i * classes, classes).ToArray())];
}
