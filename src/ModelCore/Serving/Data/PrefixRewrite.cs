namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// Replaces the start of a manifest's image references: <c>gs://bucket/=training/</c> reads
/// <c>gs://bucket/cat/1.jpg</c> as the blob <c>cat/1.jpg</c> of the container <c>training</c>. The target is
/// <c>container/[prefix]</c> in the configured storage account, an http(s) URL in that account, or a local
/// folder (an absolute path, or one starting with <c>./</c> or <c>../</c>, relative to the manifest). The
/// image is then named by the rest of its reference (<c>cat/1.jpg</c>), as a listing of that folder or prefix names it.
/// </summary>
public sealed record PrefixRewrite(string From, string To)
{
    /// <summary>Parses <c>FROM=TO</c> (split at the last <c>=</c>, so a FROM may contain one).</summary>
    /// <exception cref="FormatException">No <c>=</c>, or an empty side.</exception>
    public static PrefixRewrite Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var equals = text.LastIndexOf('=');
        if (equals <= 0 || equals == text.Length - 1)
        {
            throw new FormatException($"\"{text}\" is not FROM=TO (e.g. gs://bucket/=training/).");
        }
        return new PrefixRewrite(text[..equals], text[(equals + 1)..]);
    }

    public override string ToString() => $"{From}={To}";
}
