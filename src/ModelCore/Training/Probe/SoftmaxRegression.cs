using TorchSharp;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>
/// Multinomial logistic regression on standardised features (<see cref="StandardizedRows"/>), fitted to convergence with
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

    /// <summary>Fits on the rows of <paramref name="features"/> with labels and per-row weights.</summary>
    /// <param name="sampleWeights">Per-row weights (class weights); null: all 1.</param>
    /// <param name="start">Warm start (parameters of a previous fit of the same shape); null: zeros.</param>
    public static SoftmaxRegression Fit(StandardizedRows features, long[] labels, int classes, double lambda, double[]? sampleWeights = null, double[]? start = null, double gradientTolerance = 1e-6,
        CancellationToken cancellationToken = default)
    {
        var n = features.Count;
        var d = features.Width;
        ArgumentOutOfRangeException.ThrowIfNotEqual(labels.Length, n);
        var weights = sampleWeights ?? [.. Enumerable.Repeat(1.0, n)];
        var total = weights.Sum();
        using var scope = NewDisposeScope();
        // On small data the standardised rows are made once for the whole fit, not on every pass.
        using var holding = features.Hold();
        var rowWeights = tensor(weights.Select(w => w / total).ToArray(), float64).unsqueeze(1);
        var oneHot = nn.functional.one_hot(tensor(labels), classes).to(float64);
        var parameters = start is null ? new double[(classes * d) + classes] : (double[])start.Clone();
        // Scalars made once and held for the whole fit, not made implicitly (add(t) means add(t, 1)) in every block of
        // every pass: a fit on 20,000 images failed in libtorch reading an implicit alpha of 1 ("toDouble", Scalar.h).
        using var one = 1.0.ToScalar();
        using var strength = lambda.ToScalar();
        double Objective(double[] theta, double[] gradient)
        {
            cancellationToken.ThrowIfCancellationRequested();
            using var inner = NewDisposeScope();
            var all = tensor(theta, float64);
            var w = all.narrow(0, 0, classes * d).view(classes, d);
            var b = all.narrow(0, classes * d, classes);
            var gradW = w.mul(strength);
            var gradB = zeros(classes, float64);
            var loss = lambda / 2 * w.square().sum().item<double>();
            // The weighted cross-entropy and its gradient are sums over rows: accumulated a block of rows at a time.
            features.ForEachBlock((first, block) =>
            {
                var count = block.shape[0];
                var blockOneHot = oneHot.narrow(0, first, count);
                var blockWeights = rowWeights.narrow(0, first, count);
                var logProbabilities = block.matmul(w.t()).add(b, one).log_softmax(1);
                loss -= logProbabilities.mul(blockOneHot).mul(blockWeights).sum().item<double>();
                var residual = logProbabilities.exp().sub(blockOneHot).mul(blockWeights);
                gradW.add_(residual.t().matmul(block), one);
                gradB.add_(residual.sum(dim: 0), one); // named: a literal 0 would bind to the ScalarType overload
            });
            cat([gradW.reshape(-1), gradB]).data<double>().CopyTo(gradient);
            return loss;
        }
        var outcome = Lbfgs.Minimize(Objective, parameters, MaxIterations, gradientTolerance);
        return new SoftmaxRegression(classes, d, parameters) { Outcome = outcome };
    }

    /// <summary>Logits of the rows of <paramref name="features"/>, row-major (rows x classes).</summary>
    public double[] Logits(StandardizedRows features)
    {
        ArgumentOutOfRangeException.ThrowIfNotEqual(features.Width, Features);
        var logits = new double[features.Count * Classes];
        using var scope = NewDisposeScope();
        var all = tensor(Parameters, float64);
        var w = all.narrow(0, 0, Classes * Features).view(Classes, Features);
        var b = all.narrow(0, Classes * Features, Classes);
        using var one = 1.0.ToScalar();
        features.ForEachBlock((first, block) => block.matmul(w.t()).add(b, one).data<double>().CopyTo(logits.AsSpan(first * Classes, (int)block.shape[0] * Classes)));
        return logits;
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
