using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>
/// One labelled training image from a folder or a blob container.
/// </summary>
/// <param name="Source">Where it came from, relative to the data root with '/' separators (<c>cat/001.jpg</c>, <c>train/cat/001.jpg</c>).</param>
/// <param name="Label">The class: the name of the sub-folder (or blob path segment) it sits in.</param>
/// <param name="Bytes">Its size in bytes, as listed (part of the data hash).</param>
/// <param name="ReadAsync">Reads its bytes (the file or the blob), or returns them from memory.</param>
public sealed record LabeledImage(string Source, string Label, long Bytes, Func<CancellationToken, Task<byte[]>> ReadAsync);

/// <summary>An image left out of training, with the decoder's reason. Never aborts a run.</summary>
/// <param name="Source">The image's relative path.</param>
/// <param name="Code">The decoder's stable reason.</param>
/// <param name="Message">What the decoder said.</param>
public sealed record SkippedImage(string Source, ImageErrorCode Code, string Message);

/// <summary>Images per class and the largest/smallest ratio; a ratio well above 1 means the classes are imbalanced.</summary>
public sealed record ClassBalance(IReadOnlyDictionary<string, int> Counts, double MaxMinRatio);

/// <summary>A data set that cannot be trained on (too few classes or images, a hostile label), with a message naming what is wrong.</summary>
public sealed class DatasetException : Exception
{
    public DatasetException(string message) : base(message)
    {
    }

    public DatasetException(string message, Exception inner) : base(message, inner)
    {
    }
}
