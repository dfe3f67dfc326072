using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Models;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// The key of head-mode features in the feature store: SHA-256 of everything that decides an image's features
/// (the backbone's architecture and every weight and buffer, the pooled stages, the preprocessing and mean image,
/// and the reduced-scale decode size), so two runs share features exactly when they would compute the same ones.
/// The head, the labels and the training options are not in it: a new head or label set reuses the features.
/// </summary>
internal static class FeatureKey
{
    private const string Format = "serverlessclassifier-features/1";

    public static string Compute(ImageClassifier model, PreprocessingConfig preprocessing, float[]? meanImage, int decodeShorterSide)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        void Text(string value)
        {
            var bytes = Encoding.UTF8.GetBytes(value);
            hash.AppendData(BitConverter.GetBytes(bytes.Length));
            hash.AppendData(bytes);
        }
        var backbone = model.Backbone;
        Text(Format);
        Text(backbone.Architecture.Name);
        Text($"pooled={backbone.PooledStages};features={backbone.NumFeatures};decode={decodeShorterSide}");
        Text(JsonSerializer.Serialize(preprocessing with { MeanImageFile = null }));
        if (meanImage is not null)
        {
            hash.AppendData(MemoryMarshal.AsBytes(meanImage.AsSpan()));
        }
        using var scope = NewDisposeScope();
        foreach (var (name, tensor) in backbone.state_dict())
        {
            Text($"{name}:{tensor.dtype}:[{string.Join(",", tensor.shape)}]");
            var values = tensor.cpu().contiguous();
            hash.AppendData(values.dtype switch
            {
                ScalarType.Float32 => MemoryMarshal.AsBytes(values.data<float>().ToArray().AsSpan()),
                ScalarType.Int64 => MemoryMarshal.AsBytes(values.data<long>().ToArray().AsSpan()),
                _ => MemoryMarshal.AsBytes(values.to(ScalarType.Float64).data<double>().ToArray().AsSpan()),
            });
        }
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }
}
