using System.Text.RegularExpressions;
using Azure.Storage.Blobs;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// An image reference resolved: an identity for finding duplicates (a local file's full path, or a blob's
/// container and name; the strings are shared with the rest, so a key costs no text of its own), the source
/// name used everywhere else, and how to read it.
/// </summary>
internal sealed record ResolvedImage((string Container, string Path) Key, string Source, long Bytes, Func<CancellationToken, Task<byte[]>> ReadAsync);

/// <summary>
/// Resolves a manifest's image references. In order: a <see cref="PrefixRewrite"/> that matches; an http(s)
/// URL in the configured storage account (<c>&lt;account&gt;/&lt;container&gt;/&lt;blob&gt;</c>); another
/// scheme (<c>gs://</c>, <c>s3://</c>, <c>azureml://</c>) is an error saying how to copy and rewrite; an
/// absolute path is a local file; a relative path is a local file beside the manifest when one exists,
/// else a blob name in the training container. Sources are named as a folder or container listing names
/// them (the path relative to the manifest, the blob name in the training container, or after a rewrite
/// the rest of the reference after its FROM), so the same images give the same data set and model either way.
/// </summary>
internal sealed partial class ImageReferenceResolver(string manifestPath, ManifestSources sources)
{
    private readonly string directory = Path.GetDirectoryName(manifestPath)!;
    private readonly Dictionary<string, BlobContainerClient> containers = new(StringComparer.Ordinal);
    private BlobServiceClient? account;

    private BlobServiceClient Account => account ??= (sources.Account ?? throw new DatasetException(
        $"{manifestPath} names blobs, but no storage account is configured; set the storage connection, or list local files."))();

    /// <summary>The image, or null when it is a local file that does not exist.</summary>
    public ResolvedImage? Resolve(string reference, int line)
    {
        foreach (var rewrite in sources.Rewrites)
        {
            if (reference.StartsWith(rewrite.From, StringComparison.Ordinal))
            {
                return ResolveTarget(rewrite.To, reference[rewrite.From.Length..], line);
            }
        }
        var scheme = SchemePattern().Match(reference);
        if (scheme.Success)
        {
            var name = scheme.Groups[1].Value.ToLowerInvariant();
            return name is "http" or "https" ? FromUrl(reference, line) : throw Foreign(reference, name, line);
        }
        if (Path.IsPathRooted(reference))
        {
            return Local(reference);
        }
        var local = Path.GetFullPath(Path.Combine(directory, reference));
        return File.Exists(local) || sources.Account is null ? Local(local) : Blob(sources.TrainingContainer, reference);
    }

    private ResolvedImage? ResolveTarget(string to, string rest, int line)
    {
        var source = rest.TrimStart('/');
        if (SchemePattern().IsMatch(to))
        {
            return FromUrl(to + rest, line) with { Source = source };
        }
        if (Path.IsPathRooted(to) || to.StartsWith("./", StringComparison.Ordinal) || to.StartsWith("../", StringComparison.Ordinal))
        {
            return Local(Path.GetFullPath(Path.Combine(directory, to + rest))) is { } local ? local with { Source = source } : null;
        }
        var slash = to.IndexOf('/', StringComparison.Ordinal);
        var container = slash < 0 ? to : to[..slash];
        var name = (slash < 0 ? "" : to[(slash + 1)..]) + rest;
        return Blob(container, name.TrimStart('/')) with { Source = source };
    }

    private ResolvedImage FromUrl(string url, int line)
    {
        var root = Account.Uri.GetLeftPart(UriPartial.Path).TrimEnd('/') + "/";
        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || !uri.GetLeftPart(UriPartial.Path).StartsWith(root, StringComparison.OrdinalIgnoreCase))
        {
            throw new DatasetException(
                $"{manifestPath} line {line}: {Uri.UnescapeDataString(url.Split('?')[0])} is not a blob of the configured storage account. Copy the images into it " +
                "(the training container) and point the manifest at them with --rewrite-prefix <old prefix>=training/.");
        }
        var path = Uri.UnescapeDataString(uri.GetLeftPart(UriPartial.Path)[root.Length..]);
        var slash = path.IndexOf('/', StringComparison.Ordinal);
        return slash <= 0
            ? throw new DatasetException($"{manifestPath} line {line}: {url} names no blob (expected <account>/<container>/<blob>).")
            : Blob(path[..slash], path[(slash + 1)..]);
    }

    private DatasetException Foreign(string reference, string scheme, int line)
    {
        // The part to rewrite: scheme://bucket/ (gs, s3), or everything up to /paths/ (azureml datastore URIs).
        var paths = reference.IndexOf("/paths/", StringComparison.Ordinal);
        var bucketEnd = reference.IndexOf('/', scheme.Length + 3);
        var prefix = scheme == "azureml" && paths > 0 ? reference[..(paths + 7)] : bucketEnd > 0 ? reference[..(bucketEnd + 1)] : reference;
        return new DatasetException(
            $"{manifestPath} line {line}: {reference} is not in Azure storage ({scheme}://). Copy the images to the training container of your storage account " +
            $"(e.g. with azcopy, keeping the paths below {prefix}), then train with --rewrite-prefix {prefix}=training/ so that {prefix}cat/1.jpg reads the blob cat/1.jpg of the container training.");
    }

    private ResolvedImage? Local(string path)
    {
        var file = new FileInfo(path);
        if (!file.Exists)
        {
            return null;
        }
        var source = Path.GetRelativePath(directory, file.FullName).Replace(Path.DirectorySeparatorChar, '/');
        var full = file.FullName;
        return new ResolvedImage(("", full), source, file.Length, ct => File.ReadAllBytesAsync(full, ct));
    }

    private ResolvedImage Blob(string container, string name)
    {
        var source = container == sources.TrainingContainer ? name : $"{container}/{name}";
        if (!containers.TryGetValue(container, out var client))
        {
            containers.Add(container, client = Account.GetBlobContainerClient(container));
        }
        // The blob client is made when the image is read: a million rows keep a name each, not a client each.
        return new ResolvedImage((container, name), source, 0, ct => BlobListing.Read(client.GetBlobClient(name))(ct));
    }

    [GeneratedRegex("^([A-Za-z][A-Za-z0-9+.-]*)://")]
    private static partial Regex SchemePattern();
}
