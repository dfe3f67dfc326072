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

    /// <summary>
    /// Set when the features are the int8 backbone's (<see cref="PrecisionOptions.Int8Features"/>): the calibration images'
    /// fp32 features for the int8 check, and a few images to verify the served graph against. Null: fp32 features.
    /// </summary>
    public Int8BackboneFeatures? Int8 { get; init; }

    /// <summary>Images the backbone ran on (those without stored features, including any that then failed to load).</summary>
    public int Computed { get; init; }
}

/// <summary>
/// What head mode keeps when it extracted the features with the int8 backbone (<see cref="PrecisionOptions.Int8Features"/>).
/// </summary>
/// <param name="Sample">The calibration images, in sample order, with their fp32 features (from the calibration graph): the int8 check's fp32 side.</param>
/// <param name="VerificationInputs">The first calibration images' preprocessed inputs (<paramref name="VerificationImages"/> of them).</param>
/// <param name="VerificationFeatures">The int8 backbone's features of those inputs: the served int8 graph must give the same.</param>
/// <param name="Scheme">The quantiser's description of the int8 backbone.</param>
/// <param name="QuantizeSeconds">Seconds spent quantising the backbone.</param>
internal sealed record Int8BackboneFeatures(IReadOnlyList<(LabeledImage Image, float[] Fp32)> Sample, float[] VerificationInputs, float[] VerificationFeatures, int VerificationImages,
    string Scheme, double QuantizeSeconds);
