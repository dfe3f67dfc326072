using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Data;

/// <summary>
/// One labelled training image from a folder or a blob container.
/// </summary>
/// <param name="Source">Where it came from, relative to the data root with '/' separators (<c>cat/001.jpg</c>, <c>train/cat/001.jpg</c>).</param>
/// <param name="Label">
/// The class: the name of the sub-folder (or blob path segment) it sits in. In a multi-label data set, the image's labels
/// joined by ';' (empty for none): the stratum its split is drawn by, not a class.
/// </param>
/// <param name="Bytes">Its size in bytes, as listed (part of the data hash).</param>
/// <param name="ReadAsync">Reads its bytes (the file or the blob), or returns them from memory.</param>
public sealed record LabeledImage(string Source, string Label, long Bytes, Func<CancellationToken, Task<byte[]>> ReadAsync)
{
    /// <summary>
    /// For an image read from blob storage, its blob (<c>&lt;container&gt;/&lt;name&gt;</c>) and version (ETag) as
    /// listed: what stored head-mode features are matched by (<see cref="FeatureStore"/>). Null for local files.
    /// </summary>
    public FeatureImage? Identity { get; init; }

    /// <summary>In a multi-label data set, the image's labels (ordinal order; empty: a negative, none of them); null in a multi-class one.</summary>
    public IReadOnlyList<string>? Labels { get; init; }
}

/// <summary>An image left out of training, with the reason. Never aborts a run.</summary>
/// <param name="Source">The image's relative path (or its reference in a manifest).</param>
/// <param name="Code">A stable reason: the decoder's <see cref="ImageErrorCode"/> name, or one of <see cref="SkipCodes"/>.</param>
/// <param name="Message">What was wrong.</param>
public sealed record SkippedImage(string Source, string Code, string Message)
{
    /// <summary>An image the decoder refused.</summary>
    public SkippedImage(string source, ImageErrorCode code, string message)
        : this(source, code.ToString(), message)
    {
    }
}

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
