namespace ServerlessClassifier.ModelCore.Data;

/// <summary>The split a manifest row assigns its image to (Vertex AI's <c>ML_USE</c>); <see cref="None"/> when it says nothing.</summary>
public enum ManifestSplit
{
    None = 0,
    Training = 1,
    Validation = 2,
    Test = 3,
}
