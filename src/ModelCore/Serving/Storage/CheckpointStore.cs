using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// A training run's checkpoint folder kept in blob storage as well (<c>train --checkpoints container[/prefix]</c>), so that
/// a run survives the loss of the machine it ran on: after the folder changes (the run's start, every epoch) its files are
/// uploaded under the prefix, <c>run.json</c> last, then the blobs of files the folder no longer holds are deleted; a
/// new machine restores them into an empty folder and continues. Blobs are always a complete epoch: the files a stored
/// <c>run.json</c> names are uploaded before it and deleted only after a newer one replaced it.
/// </summary>
public sealed class CheckpointStore(BlobContainerClient container, string prefix)
{
    /// <summary>The file the folder's other files hang off; written last, restored last.</summary>
    public const string RecordFileName = "run.json";

    private readonly string prefix = prefix.Trim('/').Length == 0 ? "" : prefix.Trim('/') + "/";

    /// <summary><c>container/prefix</c>, for messages (no account or endpoint).</summary>
    public string Location => $"{container.Name}/{prefix}";

    /// <summary>Whether a run record is stored under the prefix.</summary>
    public async Task<bool> HoldsRunAsync(CancellationToken cancellationToken = default) =>
        await container.ExistsAsync(cancellationToken) && await container.GetBlobClient(prefix + RecordFileName).ExistsAsync(cancellationToken);

    /// <summary>
    /// Downloads the stored checkpoint into <paramref name="folder"/> (created when missing), <c>run.json</c> last; false when
    /// none is stored. Only blobs directly under the prefix with plain file names are read; each file is written whole or
    /// not at all.
    /// </summary>
    public async Task<bool> RestoreAsync(string folder, CancellationToken cancellationToken = default)
    {
        if (!await HoldsRunAsync(cancellationToken))
        {
            return false;
        }
        Directory.CreateDirectory(folder);
        var names = await StoredNamesAsync(cancellationToken);
        foreach (var name in names.Where(n => n != RecordFileName).Append(RecordFileName))
        {
            var path = Path.Combine(folder, name);
            var temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
            try
            {
                await container.GetBlobClient(prefix + name).DownloadToAsync(temporary, cancellationToken);
                File.Move(temporary, path, overwrite: true);
            }
            finally
            {
                File.Delete(temporary);
            }
        }
        return true;
    }

    /// <summary>
    /// Makes the stored copy the folder's content: uploads every file it does not hold yet (or holds with another size),
    /// then <c>run.json</c>, then deletes the blobs of files the folder no longer has. Temporary files are skipped.
    /// </summary>
    public void Save(string folder)
    {
        container.CreateIfNotExists();
        var local = Directory.EnumerateFiles(folder)
            .Select(p => new FileInfo(p))
            .Where(f => !f.Name.EndsWith(".tmp", StringComparison.Ordinal) && ModelManifest.IsPlainFileName(f.Name))
            .ToDictionary(f => f.Name, StringComparer.Ordinal);
        if (!local.TryGetValue(RecordFileName, out var record))
        {
            throw new InvalidOperationException($"{folder} has no {RecordFileName}: nothing to keep.");
        }
        var stored = container.GetBlobs(BlobTraits.None, BlobStates.None, prefix, CancellationToken.None)
            .Where(b => IsDirectChild(b.Name))
            .ToDictionary(b => b.Name[prefix.Length..], b => b.Properties.ContentLength ?? -1, StringComparer.Ordinal);
        foreach (var file in local.Values.Where(f => f.Name != RecordFileName))
        {
            if (!stored.TryGetValue(file.Name, out var length) || length != file.Length)
            {
                container.GetBlobClient(prefix + file.Name).Upload(file.FullName, overwrite: true);
            }
        }
        container.GetBlobClient(prefix + RecordFileName).Upload(record.FullName, overwrite: true);
        foreach (var gone in stored.Keys.Where(n => !local.ContainsKey(n)))
        {
            container.GetBlobClient(prefix + gone).DeleteIfExists();
        }
    }

    /// <summary>Deletes the stored checkpoint (the run finished), <c>run.json</c> first so that no half is ever read as a run.</summary>
    public async Task ClearAsync(CancellationToken cancellationToken = default)
    {
        if (!await container.ExistsAsync(cancellationToken))
        {
            return;
        }
        await container.GetBlobClient(prefix + RecordFileName).DeleteIfExistsAsync(cancellationToken: cancellationToken);
        foreach (var name in await StoredNamesAsync(cancellationToken))
        {
            await container.GetBlobClient(prefix + name).DeleteIfExistsAsync(cancellationToken: cancellationToken);
        }
    }

    /// <summary>The names (below the prefix) of the stored files: direct children with plain file names only.</summary>
    private async Task<List<string>> StoredNamesAsync(CancellationToken cancellationToken)
    {
        var names = new List<string>();
        await foreach (var blob in container.GetBlobsAsync(BlobTraits.None, BlobStates.None, prefix, cancellationToken))
        {
            if (IsDirectChild(blob.Name))
            {
                names.Add(blob.Name[prefix.Length..]);
            }
        }
        return names;
    }

    private bool IsDirectChild(string blobName)
    {
        var name = blobName[prefix.Length..];
        return !name.Contains('/', StringComparison.Ordinal) && !name.Contains('\\', StringComparison.Ordinal) && ModelManifest.IsPlainFileName(name)
            && !name.EndsWith(".tmp", StringComparison.Ordinal);
    }

    /// <summary>A storage failure's short reason (status and error code), never the account or request URL.</summary>
    public static string Describe(RequestFailedException e) => string.IsNullOrEmpty(e.ErrorCode) ? $"HTTP {e.Status}" : $"HTTP {e.Status} {e.ErrorCode}";
}
