namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// One feature set the linear probe was cross-validated on (manifest <c>training.probe.featureChoices</c>): which pooled
/// stages it read (<c>layer4</c>, <c>layer3+layer4</c>), whether mirror images were extra training rows, and its
/// out-of-fold log-loss and accuracy at its own chosen L2 strength, on the same folds as every other candidate.
/// </summary>
public sealed record FeatureCandidate(string Stages, bool Flipped, double Lambda, double Loss, double Accuracy, bool Chosen);
