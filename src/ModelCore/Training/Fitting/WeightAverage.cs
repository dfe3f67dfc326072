using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>
/// The weights of <see cref="Plans.EpochPlan.WeightInterpolation"/>: the start's (epoch 0's) and the running uniform mean of
/// every completed epoch's (SWA), both on the CPU, and the interpolation between them (WiSE-FT). Tensors that are not
/// floating point (BatchNorm's batch counters) are not averaged: the latest epoch's value is kept.
/// </summary>
internal sealed class WeightAverage(Dictionary<string, Tensor> start) : IDisposable
{
    public Dictionary<string, Tensor> Start { get; } = start;

    /// <summary>The mean of the <see cref="Epochs"/> completed epochs' weights; null before the first.</summary>
    public Dictionary<string, Tensor>? Mean { get; private set; }

    public int Epochs { get; private set; }

    /// <summary>An average read back from a checkpoint.</summary>
    public static WeightAverage Restored(Dictionary<string, Tensor> start, Dictionary<string, Tensor>? mean, int epochs) =>
        new(start) { Mean = mean, Epochs = mean is null ? 0 : epochs };

    /// <summary>Adds one more epoch's weights (the module's current ones) to the mean.</summary>
    public void Add(nn.Module module)
    {
        var epochs = Epochs + 1;
        var latest = ParameterGroups.Snapshot(module);
        if (Mean is { } previous)
        {
            using var noGrad = no_grad();
            foreach (var (name, weights) in latest)
            {
                if (weights.is_floating_point())
                {
                    // mean_n = mean_(n-1) + (w_n - mean_(n-1)) / n, written into the snapshot of w_n.
                    using var difference = weights - previous[name];
                    using var step = difference * (1.0 / epochs);
                    using var mean = previous[name] + step;
                    weights.copy_(mean);
                }
            }
            DisposeMean();
        }
        (Mean, Epochs) = (latest, epochs);
    }

    /// <summary>
    /// <c>start + alpha x (mean - start)</c> per floating-point tensor (the mean's value for the others): 0 is the start, 1 the
    /// mean. New tensors; the caller disposes them.
    /// </summary>
    public Dictionary<string, Tensor> Interpolate(double alpha)
    {
        var mean = Mean ?? throw new InvalidOperationException("No epoch has been averaged yet.");
        using var noGrad = no_grad();
        var result = new Dictionary<string, Tensor>(StringComparer.Ordinal);
        foreach (var (name, start) in Start)
        {
            var end = mean[name];
            if (!start.is_floating_point())
            {
                result[name] = end.clone();
                continue;
            }
            using var difference = end - start;
            using var step = difference * alpha;
            result[name] = start + step;
        }
        return result;
    }

    /// <summary>Disposes the mean only (the start passes from one average to the next).</summary>
    public void DisposeMean()
    {
        foreach (var tensor in Mean?.Values ?? Enumerable.Empty<Tensor>())
        {
            tensor.Dispose();
        }
    }

    public void Dispose()
    {
        DisposeMean();
        foreach (var tensor in Start.Values)
        {
            tensor.Dispose();
        }
    }
}
