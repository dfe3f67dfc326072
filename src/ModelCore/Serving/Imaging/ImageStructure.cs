using System.Buffers.Binary;

namespace ServerlessClassifier.ModelCore.Imaging;

/// <summary>Walks JPEG marker segments far enough to tell a complete file from a truncated one.</summary>
internal static class JpegStructure
{
    private const byte Marker = 0xFF;
    private const byte StartOfScan = 0xDA;
    private const byte EndOfImage = 0xD9;

    /// <summary>
    /// True when an end-of-image marker (FF D9) follows the first start-of-scan segment. Segments
    /// before the scan are skipped by their lengths, so an EXIF thumbnail's own FF D9 does not count;
    /// inside entropy-coded data FF is always followed by 00 or a restart marker, so FF D9 there is
    /// the real end. Trailing bytes after it (some cameras append data) are allowed.
    /// </summary>
    public static bool HasEndOfImageAfterScan(ReadOnlySpan<byte> data)
    {
        int pos = 2; // after SOI (FF D8), which format detection has already checked
        while (pos + 1 < data.Length)
        {
            if (data[pos] != Marker)
            {
                return false;
            }

            while (pos < data.Length && data[pos] == Marker)
            {
                pos++; // fill bytes
            }

            if (pos >= data.Length)
            {
                return false;
            }

            byte marker = data[pos++];
            if (marker == EndOfImage)
            {
                return false; // an image that ends before any scan has no pixels
            }

            if (marker is 0x01 or (>= 0xD0 and <= 0xD7))
            {
                continue; // stand-alone markers carry no length
            }

            if (pos + 2 > data.Length)
            {
                return false;
            }

            int length = BinaryPrimitives.ReadUInt16BigEndian(data[pos..]);
            pos += length;
            if (marker == StartOfScan)
            {
                return pos <= data.Length && data[pos..].IndexOf([Marker, EndOfImage]) >= 0;
            }
        }

        return false;
    }
}

/// <summary>Walks PNG chunks to check that the file reaches its IEND chunk.</summary>
internal static class PngStructure
{
    private const int SignatureLength = 8;

    /// <summary>True when the chunk sequence is whole up to and including IEND.</summary>
    public static bool HasEndChunk(ReadOnlySpan<byte> data)
    {
        long pos = SignatureLength;
        while (pos + 12 <= data.Length)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[(int)pos..]);
            var type = data.Slice((int)pos + 4, 4);
            long end = pos + 12 + length; // length, type, data, CRC
            if (end > data.Length)
            {
                return false;
            }

            if (type.SequenceEqual("IEND"u8))
            {
                return true;
            }

            pos = end;
        }

        return false;
    }
}
