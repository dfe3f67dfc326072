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
}
