using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>
/// A multi-label fine-tune's targets, in the order of its batches' images: whether each training and validation image carries
/// each label (n x labels, row-major).
/// </summary>
internal sealed class MultiLabelTargets
{
    public MultiLabelTargets(int labels, bool[] train, bool[] validation)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(labels);
        ArgumentOutOfRangeException.ThrowIfNotEqual(train.Length % labels, 0);
        ArgumentOutOfRangeException.ThrowIfNotEqual(validation.Length % labels, 0);
        Labels = labels;
        Train = train;
        Validation = validation;
    }

    public int Labels { get; }

    public bool[] Train { get; }

    public bool[] Validation { get; }

    /// <summary>The training images <paramref name="indices"/>' targets (1 carries, 0 not), indices x labels, on the device.</summary>
    public Tensor TrainTargets(int[] indices, Device device) =>
        tensor(indices.SelectMany(i => Train.AsSpan(i * Labels, Labels).ToArray()).Select(t => t ? 1f : 0f).ToArray(), [indices.Length, Labels]).to(device);

    /// <summary>Validation images [start, start + count)'s targets, count x labels, on the device.</summary>
    public Tensor ValidationTargets(int start, int count, Device device) =>
        tensor(Validation.AsSpan(start * Labels, count * Labels).ToArray().Select(t => t ? 1f : 0f).ToArray(), [count, Labels]).to(device);

    /// <summary>Each validation image's loss: its per-label binary cross-entropies (on the logits, n x labels) summed.</summary>
    public double[] ImageLosses(double[] logits)
    {
        var n = logits.Length / Labels;
        var losses = new double[n];
        for (var i = 0; i < n; i++)
        {
            for (var l = 0; l < Labels; l++)
            {
                var z = logits[(i * Labels) + l];
                // -log sigmoid(z) for a label the image carries, -log(1 - sigmoid(z)) for one it does not, computed stably.
                var signed = Validation[(i * Labels) + l] ? z : -z;
                losses[i] += Math.Max(-signed, 0) + Math.Log(1 + Math.Exp(-Math.Abs(signed)));
            }
        }
        return losses;
    }
}
