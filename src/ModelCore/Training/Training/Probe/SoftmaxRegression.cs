using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training.Probe;

/// <summary>
/// Multinomial logistic regression on (already standardised) features, fitted to convergence with
/// full-batch <see cref="Lbfgs"/>: minimises the weighted mean cross-entropy plus
/// (lambda / 2) ||W||^2 (the bias is not penalised). Float64 throughout, on the CPU.
/// Parameters are one flat vector: W (classes x features, row-major), then b (classes).
/// </summary>
internal sealed class SoftmaxRegression
{
    /// <summary>Iteration cap of one fit; separable data with a weak penalty may reach it (the weights keep growing).</summary>
    public const int MaxIterations = 300;

    private SoftmaxRegression(int classes, int features, double[] parameters)
    {
        Classes = classes;
        Features = features;
        Parameters = parameters;
    }

    public int Classes { get; }

    public int Features { get; }

    /// <summary>W (row-major, classes x features) then b.</summary>
    public double[] Parameters { get; }

    /// <summary>Iterations the fit took and whether it converged.</summary>
    public LbfgsOutcome? Outcome { get; private init; }

    /// <summary>Fits on rows of <paramref name="features"/> (n x d, float64) with labels and per-row weights.</summary>
    /// <param name="sampleWeights">Per-row weights (class weights); null: all 1.</param>
    /// <param name="start">Warm start (parameters of a previous fit of the same shape); null: zeros.</param>
    public static SoftmaxRegression Fit(Tensor features, long[] labels, int classes, double lambda, double[]? sampleWeights = null, double[]? start = null, double gradientTolerance = 1e-6)
    {
        var n = (int)features.shape[0];
        var d = (int)features.shape[1];
        ArgumentOutOfRangeException.ThrowIfNotEqual(labels.Length, n);
        var weights = sampleWeights ?? [.. Enumerable.Repeat(1.0, n)];
        var total = weights.Sum();
        using var scope = NewDisposeScope();
        var targets = tensor(labels);
        var rowWeights = tensor(weights.Select(w => w / total).ToArray(), float64).unsqueeze(1);
        var oneHot = nn.functional.one_hot(targets, classes).to(float64);
        var parameters = start is null ? new double[(classes * d) + classes] : (double[])start.Clone();
        double Objective(double[] theta, double[] gradient)
        {
            using var inner = NewDisposeScope();
            var all = tensor(theta, float64);
            var w = all.narrow(0, 0, classes * d).view(classes, d);
            var b = all.narrow(0, classes * d, classes);
            var logProbabilities = features.matmul(w.t()).add(b).log_softmax(1);
            var loss = -(logProbabilities.mul(oneHot).mul(rowWeights).sum().item<double>()) + (lambda / 2 * w.square().sum().item<double>());
            var residual = logProbabilities.exp().sub(oneHot).mul(rowWeights);
            var gradW = residual.t().matmul(features).add(w.mul(lambda));
            var gradB = residual.sum(dim: 0); // named: a literal 0 would bind to the ScalarType overload
            cat([gradW.reshape(-1), gradB]).data<double>().CopyTo(gradient);
            return loss;
        }
        var outcome = Lbfgs.Minimize(Objective, parameters, MaxIterations, gradientTolerance);
        return new SoftmaxRegression(classes, d, parameters) { Outcome = outcome };
    }

    /// <summary>Logits (n x classes) of the rows of <paramref name="features"/>, in the caller's dispose scope.</summary>
    public Tensor Logits(Tensor features)
    {
        using var scope = NewDisposeScope();
        var all = tensor(Parameters, float64);
        var w = all.narrow(0, 0, Classes * Features).view(Classes, Features);
        var b = all.narrow(0, Classes * Features, Classes);
        return features.matmul(w.t()).add(b).MoveToOuterDisposeScope();
    }

    /// <summary>W as a (classes x features) array.</summary>
    public double[,] Weight()
    {
        var w = new double[Classes, Features];
        for (var c = 0; c < Classes; c++)
        {
            for (var f = 0; f < Features; f++)
            {
                w[c, f] = Parameters[(c * Features) + f];
            }
        }
        return w;
    }

    public double[] Bias() => Parameters.AsSpan(Classes * Features, Classes).ToArray();
}
