using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Export.Quantization;

/// <summary>
/// The int8 calibration collected during head mode's feature pass. The calibration images are training images the
/// feature pass decodes and runs through the backbone anyway; for them it runs the calibration graph
/// (<see cref="CalibrationGraph"/>, which also gives the pooled features) instead of the serving graph, and keeps
/// each quantised tensor's statistics. The int8 step (<see cref="ServingGraphs"/>) uses them when the final model's
/// calibration graph is the same, byte for byte, and the sample the same images in the same order; otherwise it
/// calibrates as before.
/// </summary>
public sealed class FeaturePassCalibration : IDisposable
{
    private readonly CalibrationGraph graph;
    private readonly InferenceSession session;
    private readonly Dictionary<LabeledImage, int> slots = new(ReferenceEqualityComparer.Instance);
    private readonly Stopwatch clock = new();
    private readonly int inputSize;
    private (CalibrationMethod Method, Dictionary<string, ActivationRange> Ranges)? chosen;

    private FeaturePassCalibration(CalibrationGraph graph, IReadOnlyList<LabeledImage> sample, Int8QuantizerOptions options, int inputSize)
    {
        this.graph = graph;
        this.inputSize = inputSize;
        Sources = [.. sample.Select(s => s.Source)];
        Options = options;
        for (var i = 0; i < sample.Count; i++)
        {
            slots.TryAdd(sample[i], i);
        }
        Statistics = new CalibrationStatistics(graph.Tensors, sample.Count);
        session = graph.OpenSession();
    }

    /// <summary>The calibration sample's sources, in sample order.</summary>
    public IReadOnlyList<string> Sources { get; }

    /// <summary>Images whose statistics were collected.</summary>
    public int Images => Statistics.Added;

    /// <summary>Whether every image of the sample was collected.</summary>
    public bool Complete => Statistics.Added == Statistics.Images;

    /// <summary>Seconds the calibration graph ran (statistics included), in place of the serving graph on the sample.</summary>
    public double Seconds => clock.Elapsed.TotalSeconds;

    internal Int8QuantizerOptions Options { get; }

    internal string Key => graph.Key;

    internal CalibrationStatistics Statistics { get; }

    /// <summary>
    /// Starts collecting over <paramref name="sample"/> with <paramref name="fp32Onnx"/>'s calibration graph, or null when
    /// the int8 step would need the images themselves (a sensitivity search) or the graph has no features output.
    /// </summary>
    internal static FeaturePassCalibration? Start(byte[] fp32Onnx, IReadOnlyList<LabeledImage> sample, Int8QuantizerOptions options, int inputSize)
    {
        if (options.MaxFloatLayers > 0 || sample.Count == 0)
        {
            return null;
        }
        var graph = CalibrationGraph.Build(fp32Onnx, options.FloatStem);
        return new FeaturePassCalibration(graph, sample, options, inputSize);
    }

    /// <summary>
    /// The int8 graph of the calibration graph's model, quantised with the collected ranges (every image collected): head
    /// mode extracts its features with it when the head is to be fitted on the int8 backbone's features. Its head is the
    /// untrained one and irrelevant (the features do not depend on it); the served graph is quantised again from the final
    /// model with the same ranges, and its backbone is the same.
    /// </summary>
    internal Int8Graph Quantize() => Int8Quantizer.Quantize(graph, Ranges(Options.Calibration), Images, [], inputSize, Options);

    /// <summary>The collected ranges by <paramref name="method"/>, chosen once (the feature pass's int8 backbone and the served graph use the same).</summary>
    internal Dictionary<string, ActivationRange> Ranges(CalibrationMethod method)
    {
        if (chosen is { } known && known.Method == method)
        {
            return known.Ranges;
        }
        var ranges = Statistics.Ranges(method);
        chosen = (method, ranges);
        return ranges;
    }

    /// <summary>Whether the int8 step can use these statistics for <paramref name="final"/>'s calibration over <paramref name="sample"/>.</summary>
    internal bool StandsFor(CalibrationGraph final, IReadOnlyList<LabeledImage> sample, Int8QuantizerOptions options) =>
        Complete && options.MaxFloatLayers == 0 && options.FloatStem == Options.FloatStem && string.Equals(final.Key, Key, StringComparison.Ordinal)
        && sample.Select(s => s.Source).SequenceEqual(Sources, StringComparer.Ordinal);

    /// <summary>
    /// The pooled features of a batch (<paramref name="count"/> preprocessed images in <paramref name="input"/>): the
    /// calibration images not yet seen go through the calibration graph (their statistics kept), the others through
    /// <paramref name="extract"/> (the serving graph).
    /// </summary>
    internal float[] ExtractFeatures(float[] input, int count, int numFeatures, IReadOnlyList<LabeledImage> images, Func<float[], int, float[]> extract)
    {
        var calibrate = new List<(int Row, int Slot)>();
        for (var i = 0; i < count; i++)
        {
            if (slots.TryGetValue(images[i], out var slot) && !Statistics.Has(slot) && !calibrate.Any(c => c.Slot == slot))
            {
                calibrate.Add((i, slot));
            }
        }
        if (calibrate.Count == 0)
        {
            return extract(input, count);
        }
        var length = input.Length / count;
        var features = new float[count * numFeatures];
        var others = Enumerable.Range(0, count).Except(calibrate.Select(c => c.Row)).ToArray();
        if (others.Length > 0)
        {
            var rest = extract(Gather(input, length, others), others.Length);
            Scatter(rest, numFeatures, others, features);
        }
        clock.Start();
        var own = new float[calibrate.Count * numFeatures];
        ActivationCalibrator.Run(session, graph, Gather(input, length, [.. calibrate.Select(c => c.Row)]), [.. calibrate.Select(c => c.Slot)], inputSize, Statistics, own);
        clock.Stop();
        Scatter(own, numFeatures, [.. calibrate.Select(c => c.Row)], features);
        return features;
    }

    /// <summary>Closes the calibration graph's session (the statistics stay).</summary>
    public void Dispose() => session.Dispose();

    private static float[] Gather(float[] input, int length, int[] rows)
    {
        var gathered = new float[rows.Length * length];
        for (var r = 0; r < rows.Length; r++)
        {
            Array.Copy(input, rows[r] * length, gathered, r * length, length);
        }
        return gathered;
    }

    private static void Scatter(float[] rows, int width, int[] at, float[] into)
    {
        for (var r = 0; r < at.Length; r++)
        {
            Array.Copy(rows, r * width, into, at[r] * width, width);
        }
    }
}
