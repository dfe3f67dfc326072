namespace ServerlessClassifier.ModelCore.Data;

/// <summary>Which manifest a data set came from, for the output and the training report.</summary>
/// <param name="Path">The manifest file's full path.</param>
/// <param name="Format">The format detected from its content.</param>
/// <param name="Sha256">SHA-256 (hex) of the file's bytes.</param>
/// <param name="Rows">Rows read (blank lines and a header not counted).</param>
public sealed record DataManifestInfo(string Path, ManifestFormat Format, string Sha256, int Rows)
{
    /// <summary>
    /// Custom Vision tag ids by tag name, from <c>&lt;manifest without extension&gt;.tags.json</c> beside the manifest (the project's
    /// <c>GET tags</c> answer, which <c>scripts/export-customvision.sh</c> saves there); null when there is no such file.
    /// </summary>
    public IReadOnlyDictionary<string, Guid>? TagIds { get; init; }

    /// <summary>The format in words, as the output states it.</summary>
    public string FormatName => Format switch
    {
        ManifestFormat.Csv => "CSV (image,label)",
        ManifestFormat.VertexCsv => "Vertex AI import CSV ([ML_USE,]uri,label)",
        ManifestFormat.AzureMLJsonl => "Azure ML AutoML JSONL (image_url, label)",
        ManifestFormat.GroundTruth => "SageMaker Ground Truth / Rekognition manifest (source-ref, class-name)",
        _ => Format.ToString(),
    };
}
