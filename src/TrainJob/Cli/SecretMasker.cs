using System.Text.RegularExpressions;

namespace ServerlessClassifier.TrainJob.Cli;

/// <summary>
/// Removes secrets from anything printed: the configured connection string as a whole, and any
/// account key, shared access key or SAS signature that appears in a message (the Azure SDK can echo
/// parts of a connection string or a SAS URI in its exceptions).
/// </summary>
public static partial class SecretMasker
{
    public const string Mask = "***";

    public static string Apply(string text, IEnumerable<string?> knownSecrets)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentNullException.ThrowIfNull(knownSecrets);
        foreach (var secret in knownSecrets)
        {
            if (!string.IsNullOrEmpty(secret) && secret.Length >= 8)
            {
                text = text.Replace(secret, Mask, StringComparison.Ordinal);
            }
        }
        text = KeyValueSecret().Replace(text, m => $"{m.Groups[1].Value}={Mask}");
        return SasSignature().Replace(text, m => $"{m.Groups[1].Value}={Mask}");
    }

    [GeneratedRegex(@"\b(AccountKey|SharedAccessKey|SharedAccessSignature|Password|ClientSecret)\s*=\s*[^;\s""']*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex KeyValueSecret();

    [GeneratedRegex(@"\b(sig|se?ssig)=[^&\s""']*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SasSignature();
}
