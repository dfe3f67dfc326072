namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// The input and output names of every graph this product exports (the contract between the
/// training library's exporter and the serving engine).
/// </summary>
public static class OnnxGraphNames
{
    /// <summary>(N, 3, S, S) float32, already preprocessed as the manifest says.</summary>
    public const string Input = "input";

    /// <summary>(N, classes) softmax probabilities.</summary>
    public const string Probabilities = "probabilities";

    /// <summary>(N, F) the features the head reads (the pooled backbone output).</summary>
    public const string Features = "features";

    /// <summary>
    /// (N, classes, H, W) the class activation map, in graphs whose features are pooled feature maps (ResNet, DenseNet):
    /// each cell is its region's share of the class's centred logit, so a class's grid averages to
    /// <c>log p_c - mean over classes of log p</c>. Absent from VGG and AlexNet graphs and from graphs exported before it existed.
    /// </summary>
    public const string ActivationMap = "activation_map";
}
