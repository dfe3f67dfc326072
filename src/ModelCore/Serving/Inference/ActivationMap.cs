using System.Text.Json.Serialization;
using ServerlessClassifier.ModelCore.Imaging;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.ModelCore.Inference;

/// <summary>
/// One class's activation map for one image (<see cref="OnnxGraphNames.ActivationMap"/>): a Side x Side grid over the
/// model's input (the resized, centre-cropped image), each cell that region's share of the class's centred logit, so
/// the cells average to <c>log p - mean over classes of log p</c> for the class. Positive cells speak for the class,
/// negative ones against it.
/// </summary>
public sealed record ActivationMap(string Label, int Side, float[] Values)
{
    /// <summary>The cell (row, column) with the largest value.</summary>
    public (int Row, int Column) Peak
    {
        get
        {
            var best = 0;
            for (var i = 1; i < Values.Length; i++)
            {
                best = Values[i] > Values[best] ? i : best;
            }
            return (best / Side, best % Side);
        }
    }

    /// <summary>The grid as rows, each value rounded to 4 decimals (the JSON form).</summary>
    public float[][] Rows() =>
        [.. Enumerable.Range(0, Side).Select(r => Values.AsSpan(r * Side, Side).ToArray().Select(v => MathF.Round(v, 4)).ToArray())];

    /// <summary>
    /// The overlay: the model's view of the image (<see cref="ImagePreprocessor.ToImage"/>) dimmed, with the map's positive
    /// part (scaled to its largest value) upsampled bilinearly and laid over it from transparent to yellow-red. PNG bytes,
    /// InputSize x InputSize.
    /// </summary>
    public byte[] RenderOverlayPng(ImagePreprocessor preprocessor, ReadOnlySpan<float> input)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        using var image = RenderOverlay(preprocessor, input);
        using var stream = new MemoryStream();
        image.SaveAsPng(stream);
        return stream.ToArray();
    }

    /// <summary>
    /// As <see cref="RenderOverlayPng"/>, as a JPEG (quality 85): what the HTTP answer carries, a fraction of the PNG's bytes and
    /// encoding time for a photo (docs/benchmarks.md, "What explain=true costs").
    /// </summary>
    public byte[] RenderOverlayJpeg(ImagePreprocessor preprocessor, ReadOnlySpan<float> input)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        using var image = RenderOverlay(preprocessor, input);
        using var stream = new MemoryStream();
        image.SaveAsJpeg(stream, new SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder { Quality = 85 });
        return stream.ToArray();
    }

    /// <summary>As <see cref="RenderOverlayPng"/>, the image itself.</summary>
    public Image<Rgb24> RenderOverlay(ImagePreprocessor preprocessor, ReadOnlySpan<float> input)
    {
        ArgumentNullException.ThrowIfNull(preprocessor);
        var image = preprocessor.ToImage(input);
        var max = Values.Max();
        var size = image.Width;
        for (var y = 0; y < size; y++)
        {
            for (var x = 0; x < size; x++)
            {
                var heat = max > 0 ? Math.Clamp(Sample(((x + 0.5f) * Side / size) - 0.5f, ((y + 0.5f) * Side / size) - 0.5f) / max, 0, 1) : 0;
                var p = image[x, y];
                var grey = ((0.299f * p.R) + (0.587f * p.G) + (0.114f * p.B)) * 0.6f;
                // Transparent over cold regions; towards red, then yellow, as the evidence grows.
                var (r, g, b) = (255f, 255f * Math.Clamp((heat - 0.4f) / 0.6f, 0, 1), 0f);
                var alpha = 0.75f * heat;
                image[x, y] = new Rgb24(Blend(grey, r, alpha), Blend(grey, g, alpha), Blend(grey, b, alpha));
            }
        }
        return image;
    }

    private static byte Blend(float under, float over, float alpha) => (byte)Math.Clamp(MathF.Round((under * (1 - alpha)) + (over * alpha)), 0, 255);

    /// <summary>Bilinear sample of the grid at fractional cell coordinates (clamped at the edges).</summary>
    private float Sample(float column, float row)
    {
        var c0 = (int)MathF.Floor(Math.Clamp(column, 0, Side - 1));
        var r0 = (int)MathF.Floor(Math.Clamp(row, 0, Side - 1));
        var (c1, r1) = (Math.Min(c0 + 1, Side - 1), Math.Min(r0 + 1, Side - 1));
        var (fc, fr) = (Math.Clamp(column - c0, 0, 1), Math.Clamp(row - r0, 0, 1));
        float At(int r, int c) => Values[(r * Side) + c];
        var top = (At(r0, c0) * (1 - fc)) + (At(r0, c1) * fc);
        var bottom = (At(r1, c0) * (1 - fc)) + (At(r1, c1) * fc);
        return (top * (1 - fr)) + (bottom * fr);
    }
}

/// <summary>
/// The <c>explanation</c> of a prediction document (<c>POST /api/classify?explain=true</c>): the predicted class's
/// activation map as a grid (rows over the model's input, the resized centre crop, top row first) and as a JPEG overlay of
/// that crop (base64), or, for a model without one, <c>unavailable</c> saying why.
/// </summary>
public sealed record ExplanationDocument
{
    /// <summary>The class the map is for: the most probable one.</summary>
    [JsonPropertyName("label"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Label { get; init; }

    /// <summary>Side x Side values, each its region's share of the class's centred logit (they average to it).</summary>
    [JsonPropertyName("grid"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public float[][]? Grid { get; init; }

    /// <summary>The overlay as a base64 JPEG of the model's input size.</summary>
    [JsonPropertyName("overlayJpeg"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? OverlayJpeg { get; init; }

    /// <summary>Why there is no map for this model; null when there is one.</summary>
    [JsonPropertyName("unavailable"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Unavailable { get; init; }

    public static ExplanationDocument From(ActivationMap map, byte[] overlayJpeg)
    {
        ArgumentNullException.ThrowIfNull(map);
        return new ExplanationDocument { Label = map.Label, Grid = map.Rows(), OverlayJpeg = Convert.ToBase64String(overlayJpeg) };
    }
}
