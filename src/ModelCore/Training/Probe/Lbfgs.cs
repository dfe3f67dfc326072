namespace ServerlessClassifier.ModelCore.Probe;

/// <summary>How an <see cref="Lbfgs"/> minimisation ended.</summary>
/// <param name="Value">The objective at the returned point.</param>
/// <param name="GradientNorm">Largest |gradient component| there.</param>
/// <param name="Iterations">Iterations taken.</param>
/// <param name="Converged">True when the gradient or the objective's change fell below the tolerance.</param>
internal sealed record LbfgsOutcome(double Value, double GradientNorm, int Iterations, bool Converged);

/// <summary>
/// Limited-memory BFGS (Nocedal and Wright, algorithm 7.4: two-loop recursion, history of the last
/// <c>m</c> steps) with a backtracking Armijo line search, for smooth convex objectives such as
/// L2-regularised multinomial logistic regression. Deterministic: no randomness, plain doubles.
/// </summary>
internal static class Lbfgs
{
    /// <summary>Minimises <paramref name="objective"/> from <paramref name="x"/> (updated in place).</summary>
    /// <param name="objective">Writes the gradient at the point into its second argument and returns the value.</param>
    /// <param name="gradientTolerance">Stop when max |g_i| is at most this.</param>
    public static LbfgsOutcome Minimize(Func<double[], double[], double> objective, double[] x, int maxIterations = 500, double gradientTolerance = 1e-5, int history = 10)
    {
        var n = x.Length;
        var g = new double[n];
        var f = objective(x, g);
        var s = new List<double[]>();
        var y = new List<double[]>();
        var rho = new List<double>();
        var direction = new double[n];
        var alpha = new double[history];
        var candidate = new double[n];
        var candidateGradient = new double[n];
        for (var iteration = 0; iteration < maxIterations; iteration++)
        {
            var gradientNorm = MaxAbs(g);
            if (gradientNorm <= gradientTolerance)
            {
                return new LbfgsOutcome(f, gradientNorm, iteration, true);
            }
            // Two-loop recursion: direction = -H g.
            Array.Copy(g, direction, n);
            for (var k = s.Count - 1; k >= 0; k--)
            {
                alpha[k] = rho[k] * Dot(s[k], direction);
                Axpy(-alpha[k], y[k], direction);
            }
            var gamma = s.Count == 0 ? 1 / Math.Max(1, Norm(g)) : Dot(s[^1], y[^1]) / Dot(y[^1], y[^1]);
            Scale(direction, gamma);
            for (var k = 0; k < s.Count; k++)
            {
                var beta = rho[k] * Dot(y[k], direction);
                Axpy(alpha[k] - beta, s[k], direction);
            }
            Scale(direction, -1);
            var slope = Dot(g, direction);
            if (slope >= 0)
            {
                // Not a descent direction (numerical trouble): restart from steepest descent.
                s.Clear();
                y.Clear();
                rho.Clear();
                Array.Copy(g, direction, n);
                Scale(direction, -1 / Math.Max(1, Norm(g)));
                slope = Dot(g, direction);
            }
            var step = 1.0;
            double candidateValue;
            var accepted = false;
            for (var trial = 0; trial < 40; trial++)
            {
                for (var i = 0; i < n; i++)
                {
                    candidate[i] = x[i] + (step * direction[i]);
                }
                candidateValue = objective(candidate, candidateGradient);
                if (double.IsFinite(candidateValue) && candidateValue <= f + (1e-4 * step * slope))
                {
                    accepted = true;
                    var sk = new double[n];
                    var yk = new double[n];
                    for (var i = 0; i < n; i++)
                    {
                        sk[i] = candidate[i] - x[i];
                        yk[i] = candidateGradient[i] - g[i];
                    }
                    var sy = Dot(sk, yk);
                    if (sy > 1e-12)
                    {
                        if (s.Count == history)
                        {
                            s.RemoveAt(0);
                            y.RemoveAt(0);
                            rho.RemoveAt(0);
                        }
                        s.Add(sk);
                        y.Add(yk);
                        rho.Add(1 / sy);
                    }
                    var change = f - candidateValue;
                    Array.Copy(candidate, x, n);
                    Array.Copy(candidateGradient, g, n);
                    f = candidateValue;
                    if (change <= 1e-12 * Math.Max(1, Math.Abs(f)))
                    {
                        return new LbfgsOutcome(f, MaxAbs(g), iteration + 1, true);
                    }
                    break;
                }
                step /= 2;
            }
            if (!accepted)
            {
                return new LbfgsOutcome(f, MaxAbs(g), iteration + 1, false);
            }
        }
        return new LbfgsOutcome(f, MaxAbs(g), maxIterations, MaxAbs(g) <= gradientTolerance);
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (var i = 0; i < a.Length; i++)
        {
            sum += a[i] * b[i];
        }
        return sum;
    }

    private static double Norm(double[] a) => Math.Sqrt(Dot(a, a));

    private static double MaxAbs(double[] a)
    {
        double max = 0;
        foreach (var v in a)
        {
            max = Math.Max(max, Math.Abs(v));
        }
        return max;
    }

    private static void Axpy(double a, double[] x, double[] y)
    {
        for (var i = 0; i < x.Length; i++)
        {
            y[i] += a * x[i];
        }
    }

    private static void Scale(double[] x, double a)
    {
        for (var i = 0; i < x.Length; i++)
        {
            x[i] *= a;
        }
    }
}
