namespace ServerlessClassifier.ModelCore.Data;

/// <summary>The kinds of manifest <see cref="DataManifest"/> reads, told apart by the file's content.</summary>
public enum ManifestFormat
{
    /// <summary><c>image,label</c> per line (header optional).</summary>
    Csv = 1,

    /// <summary>Vertex AI's import CSV for single-label image classification: <c>[ML_USE,]uri,label</c>.</summary>
    VertexCsv = 2,

    /// <summary>Azure ML AutoML's JSON Lines for multi-class image classification: <c>{"image_url": ..., "label": ...}</c>.</summary>
    AzureMLJsonl = 3,

    /// <summary>The SageMaker Ground Truth manifest Rekognition Custom Labels uses: <c>source-ref</c> plus <c>&lt;job&gt;-metadata.class-name</c>.</summary>
    GroundTruth = 4,
}
