namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// The check that the exported fp32 ONNX graph computes what the trained TorchSharp model computes (manifest
/// <c>verification</c>): the largest probability difference over real preprocessed images, at most the tolerance, else
/// nothing is written.
/// </summary>
public sealed record ExportVerification(double MaxProbabilityDifference, int Images, double Tolerance);
