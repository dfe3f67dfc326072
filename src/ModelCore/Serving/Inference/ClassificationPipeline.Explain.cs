using System.Diagnostics;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>Classification with its activation map (docs/architecture.md, "Why: activation maps").</summary>
public sealed partial class ClassificationPipeline
{
    /// <summary>Why this model has no activation map; null when it has one.</summary>
    public string? ActivationMapUnavailable => Engine is OnnxEngine { HasActivationMap: true }
        ? null
        : Manifest.Backbone.StartsWith("vgg", StringComparison.Ordinal) || Manifest.Backbone.StartsWith("alexnet", StringComparison.Ordinal)
            ? $"{Manifest.Backbone} has no exact activation map: its head reads fully connected layers, not pooled feature maps (ResNet and DenseNet models have one)."
            : "This model's graph has no activation map (it was exported before they existed, or by an engine without one); train or publish it again to get one.";

    /// <summary>
    /// Classifies one prepared image as <see cref="ClassifyPrepared"/> does and, from the same forward pass, the most
    /// probable class's activation map (null, with <see cref="ActivationMapUnavailable"/> saying why, when the model has
    /// none). Not batched: the map is asked for one image at a time. <paramref name="mapLabel"/>: the map of that class instead.
    /// </summary>
    public (Classification Classification, ActivationMap? Map) Explain(PreparedImage image, int top = 5, double? threshold = null, string? mapLabel = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (Engine is not OnnxEngine { HasActivationMap: true } onnx)
        {
            return (ClassifyPrepared([image], top, threshold)[0], null);
        }
        var clock = Stopwatch.StartNew();
        var (probabilities, features, map, side) = onnx.Explain(image.Input);
        var inferenceMs = clock.Elapsed.TotalMilliseconds;
        var ranked = TopK.Select(probabilities, Manifest.Labels, IsMultiLabel ? Manifest.Labels.Count : top);
        double? score = features is not null && OutOfDistribution is { } ood && features.Length == ood.Features ? ood.Score(features) : null;
        var timings = new ClassificationTimings(image.DecodeMs, image.PreprocessMs, inferenceMs);
        var classification = IsMultiLabel
            ? Classification.DecideMultiLabel(ranked, LabelThresholds(threshold), top, timings, score)
            : Classification.Decide(ranked, ThresholdFor(ranked[0].Label, threshold), timings, score);
        var best = 0;
        for (var i = 1; i < probabilities.Length; i++)
        {
            best = probabilities[i] > probabilities[best] ? i : best;
        }
        if (mapLabel is not null)
        {
            best = Manifest.Labels.ToList().IndexOf(mapLabel);
            if (best < 0)
            {
                throw new ArgumentException($"The model has no label \"{mapLabel}\".", nameof(mapLabel));
            }
        }
        var cells = side * side;
        return (classification, new ActivationMap(Manifest.Labels[best], side, map.AsSpan(best * cells, cells).ToArray()));
    }

    /// <summary>The overlay of <paramref name="map"/> on the model's view of <paramref name="image"/>, as PNG bytes.</summary>
    public byte[] RenderOverlayPng(ActivationMap map, PreparedImage image)
    {
        ArgumentNullException.ThrowIfNull(map);
        ArgumentNullException.ThrowIfNull(image);
        return map.RenderOverlayPng(preprocessor, image.Input);
    }

    /// <summary>The explanation document for a prediction: the map as a grid and an overlay, or why there is none.</summary>
    public ExplanationDocument ExplanationFor(ActivationMap? map, PreparedImage image) =>
        map is null
            ? new ExplanationDocument { Unavailable = ActivationMapUnavailable }
            : ExplanationDocument.From(map, map.RenderOverlayJpeg(preprocessor, image.Input));
}
