using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Features;

namespace ServerlessClassifier.ModelCore.Fitting;

/// <summary>
/// The held-out evidence of a fit: the images the fitted model's figures come from (scored out-of-fold by a probe, or the
/// validation split the epochs never trained on), their labels and the model's raw logits on them (n x classes).
/// </summary>
internal sealed record Judged(IReadOnlyList<LabeledImage> Images, int[] Labels, IReadOnlyList<string> Sources, double[] Logits, string Evidence)
{
    /// <summary>A probe's fold heads on raw features, which gave <see cref="Logits"/>; null: the served head gave them.</summary>
    public IReadOnlyList<Export.Quantization.LinearWeights>? Heads { get; init; }

    /// <summary>With <see cref="Heads"/>: each image's head (its fold).</summary>
    public int[]? HeadOf { get; init; }

    /// <summary>The evidence of a probe's cross-validation.</summary>
    public const string OutOfFold = "out-of-fold";

    /// <summary>The evidence of the validation split.</summary>
    public const string ValidationSplit = "validation";
}

/// <summary>
/// What the fit stage hands to calibration: the model's head is fitted (its weights are in the classifier), and this says
/// on what evidence, how the run went, and what the manifest should say about the training.
/// </summary>
internal sealed record Fitted
{
    public required Judged Judged { get; init; }

    /// <summary>Every completed epoch (one entry for a probe, which has none).</summary>
    public required IReadOnlyList<EpochMetrics> History { get; init; }

    public required int BestEpoch { get; init; }

    public bool StoppedEarly { get; init; }

    public int ResumedFromEpoch { get; init; }

    /// <summary>The manifest's training summary, without the calibration (the next stage adds it).</summary>
    public required TrainingSummary Summary { get; init; }

    /// <summary>The temperature the fit already folded into the head, chosen on <see cref="Judged"/> (a probe's own); null: calibration chooses one.</summary>
    public Probe.TemperatureChoice? Temperature { get; init; }

    /// <summary>The features of every image under the final backbone, where the fit computed them (head mode's, a refit's); null: the OOD stage computes them.</summary>
    public FeatureCache? Features { get; init; }

    /// <summary>Preprocessed images the export is verified on.</summary>
    public required IReadOnlyList<float[]> VerificationInputs { get; init; }

    /// <summary>Head mode: largest relative difference between ONNX Runtime's and TorchSharp's backbone features.</summary>
    public double? FeatureParityRelativeDifference { get; init; }

    /// <summary>Head mode: seconds spent on the features.</summary>
    public double? FeatureSeconds { get; init; }
}
