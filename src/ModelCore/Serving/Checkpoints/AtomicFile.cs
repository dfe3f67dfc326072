using System.Text;

namespace ServerlessClassifier.ModelCore.Checkpoints;

/// <summary>
/// Writes a file so that readers (and a crash) see the old content or the whole new content, never a
/// part: the bytes go to a temporary file beside the target, are flushed to disk, then the file is
/// renamed over the target.
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(write);
        var temporary = $"{path}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write))
            {
                write(stream);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            File.Delete(temporary);
            throw;
        }
    }

    public static void WriteAllBytes(string path, ReadOnlyMemory<byte> content) => Write(path, s => s.Write(content.Span));

    public static void WriteAllText(string path, string content) => WriteAllBytes(path, Encoding.UTF8.GetBytes(content));
}
