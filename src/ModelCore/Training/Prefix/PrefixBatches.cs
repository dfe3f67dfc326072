using static TorchSharp.torch;
using ServerlessClassifier.ModelCore.Inputs;

namespace ServerlessClassifier.ModelCore.Prefix;

/// <summary>
/// A fine-tune's batches from the cached frozen prefix: every training image has <see cref="Views"/> fixed
/// views (view 0 the image as served, the others augmented), and each epoch draws one view per image from
/// its seeded random; validation images have their served view only. Inputs are the prefix outputs
/// (N, C, H, W), for <see cref="SuffixClassifier"/>; with <paramref name="channelsLast"/> in channels-last memory order
/// (strides of N, H, W, C): libtorch's CPU convolutions (oneDNN) run the suffix faster on it, forward and backward, with
/// the same values up to float rounding (which training then carries on); the tensors' shape and indexing are unchanged.
/// </summary>
internal sealed class PrefixBatches(PrefixCache train, PrefixCache validation, int views, bool channelsLast, int[] shape, int[] trainLabels, int[] validationLabels,
    IReadOnlyList<string> trainSources, IReadOnlyList<string> validationSources, IReadOnlyList<float[]> verificationInputs, Device device) : IBatchSource
{
    public int[] TrainLabels { get; } = trainLabels;

    public int[] ValidationLabels { get; } = validationLabels;

    public IReadOnlyList<string> TrainSources { get; } = trainSources;

    public IReadOnlyList<string> ValidationSources { get; } = validationSources;

    public IReadOnlyList<float[]> VerificationInputs { get; } = verificationInputs;

    public int Views { get; } = views;

    /// <summary>Bytes of the two cache files.</summary>
    public long CacheBytes => train.Bytes + validation.Bytes;

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        var records = indices.Select(i => (i * Views) + random.Next(Views)).ToArray();
        return (Read(train, records), tensor(indices.Select(i => (long)TrainLabels[i]).ToArray()).to(device));
    }

    /// <summary>The served view (view 0) of training images [start, start + count).</summary>
    public Tensor PlainTrainBatch(int start, int count) => Read(train, [.. Enumerable.Range(start, count).Select(i => i * Views)]);

    public Tensor ValidationBatch(int start, int count) => Read(validation, [.. Enumerable.Range(start, count)]);

    public void Dispose()
    {
        train.Dispose();
        validation.Dispose();
    }

    private Tensor Read(PrefixCache cache, int[] records)
    {
        var length = cache.RecordLength;
        var buffer = new float[records.Length * length];
        Parallel.For(0, records.Length, i => cache.Read(records[i], buffer.AsSpan(i * length, length)));
        if (!channelsLast)
        {
            return tensor(buffer, [records.Length, shape[0], shape[1], shape[2]]).to(device);
        }
        // (N, C, H, W) stored as (N, H, W, C): the one copy that gives the tensor channels-last strides.
        using var plain = tensor(buffer, [records.Length, shape[0], shape[1], shape[2]]);
        return plain.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2).to(device);
    }
}
