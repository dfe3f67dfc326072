using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Export.Quantization;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>The backbone's features of every image that loaded, per split in dataset order, with their labels: head mode's input, and what every model's out-of-distribution statistics are fitted to.</summary>
internal sealed record FeatureCache(float[] Train, int[] TrainLabels, float[] Validation, int[] ValidationLabels, IReadOnlyList<string> ValidationSources, int NumFeatures,
    IReadOnlyList<float[]> VerificationInputs, double ParityRelativeDifference, double Seconds)
{
    public IReadOnlyList<string> TrainSources { get; init; } = [];

    /// <summary>The training images the rows of <see cref="Train"/> are of.</summary>
    public IReadOnlyList<LabeledImage> TrainImages { get; init; } = [];

    /// <summary>The validation images the rows of <see cref="Validation"/> are of.</summary>
    public IReadOnlyList<LabeledImage> ValidationImages { get; init; } = [];

    /// <summary>Features of the horizontally flipped training images, in the same order; null when not extracted.</summary>
    public float[]? TrainFlipped { get; init; }

    /// <summary>Features of the horizontally flipped validation images, in the same order; null when not extracted.</summary>
    public float[]? ValidationFlipped { get; init; }

    /// <summary>Images whose features were read from the feature store.</summary>
    public int FromStore { get; init; }

    /// <summary>The int8 calibration collected on the way (the calibration images' statistics), when it was asked for and every such image was computed here.</summary>
    public FeaturePassCalibration? Calibration { get; init; }

    /// <summary>Images the backbone ran on (those without stored features, including any that then failed to load).</summary>
    public int Computed { get; init; }
}
