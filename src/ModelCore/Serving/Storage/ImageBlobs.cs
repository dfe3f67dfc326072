using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>Reads image blobs within an <see cref="ImageDecoder"/>'s byte limit.</summary>
public static class ImageBlobs
{
    /// <summary>
    /// The blob's bytes. Its size is checked from its properties first (a blob over <see cref="ImageLimits.MaxBytes"/>
    /// is rejected as <see cref="ImageErrorCode.TooLarge"/> without being downloaded), and the read stops one byte
    /// past the limit regardless. The download is pinned to the version whose size was checked: a blob overwritten
    /// meanwhile fails with 412.
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadAsync(BlobClient image, ImageDecoder decoder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(decoder);
        var properties = await image.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
        return await ReadAsync(image, properties.Value.ETag, properties.Value.ContentLength, decoder, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The bytes of the image version <paramref name="version"/> whose size is <paramref name="length"/> (from
    /// properties the caller already read): over the limit it is rejected without a download; a blob overwritten
    /// since fails with 412 (ConditionNotMet).
    /// </summary>
    public static async Task<ReadOnlyMemory<byte>> ReadAsync(BlobClient image, ETag version, long length, ImageDecoder decoder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(decoder);
        if (length > decoder.Limits.MaxBytes)
        {
            throw new ImageRejectedException(ImageErrorCode.TooLarge,
                $"image is {length} bytes, over the limit of {decoder.Limits.MaxBytes}");
        }
        var download = await image.DownloadStreamingAsync(
            new BlobDownloadOptions { Conditions = new BlobRequestConditions { IfMatch = version } },
            cancellationToken).ConfigureAwait(false);
        await using var stream = download.Value.Content;
        return await decoder.ReadAllBytesAsync(stream, cancellationToken).ConfigureAwait(false);
    }
}
