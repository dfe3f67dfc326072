namespace ServerlessClassifier.ModelCore.Heads;

/// <summary>Which head sits on the pooled features.</summary>
public enum HeadKind
{
    /// <summary>One linear layer (the PyTorch recipe's replaced <c>fc</c>): what every plan fits (a linear probe, or its start).</summary>
    Linear,
}

/// <summary>
/// A head's shape; stored in the manifest so a checkpoint rebuilds the same module (the TorchSharp
/// modules are built from it by the training library's <c>HeadFactory</c>).
/// </summary>
public sealed record HeadSpec(HeadKind Kind, int NumClasses)
{
    /// <summary>
    /// Which backbone features the head reads: the global-average-pooled outputs of the last this-many
    /// stages, concatenated last stage first (1: the usual pooled features; 2: ResNet-18's 512 from
    /// layer4 then 256 from layer3). The exported graph computes the same and its <c>features</c>
    /// output has that width. Absent in older manifests, which means 1.
    /// </summary>
    public int PooledStages { get; init; } = 1;

    /// <summary>
    /// True for a multi-label head: each output is an independent sigmoid (the exported graph's <c>probabilities</c> are
    /// sigmoids, not a softmax). Absent (false) for a multi-class head, as in every manifest before multi-label existed.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore(Condition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingDefault)]
    public bool MultiLabel { get; init; }

    public static HeadSpec Linear(int numClasses) => new(HeadKind.Linear, numClasses);
}
