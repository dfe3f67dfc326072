namespace ServerlessClassifier.ModelCore.Data;

/// <summary>An image a manifest lists, with its label and the split the manifest assigns it to.</summary>
public sealed record ManifestImage(LabeledImage Image, ManifestSplit Split);
