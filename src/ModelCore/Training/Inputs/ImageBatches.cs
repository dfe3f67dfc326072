using ServerlessClassifier.ModelCore.Imaging;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Inputs;

/// <summary>
/// Finetune and full modes without a cached prefix: each batch is decoded from its images' bytes when it is asked
/// for (training images resized to their working image, then augmented; validation images preprocessed as serving
/// does) and dropped once it is a tensor, so memory holds one batch, not the data set. The images are those that
/// decoded in the first pass (<see cref="ImageLoader.LoadAsync{T}"/>); decoding is deterministic, so every epoch
/// sees the pixels a decode-once cache would have held.
/// </summary>
internal sealed class ImageBatches(ImageLoader loader, LoadedSplit train, LoadedSplit validation, IReadOnlyList<float[]> verificationInputs,
    Augmentation augmentation, ImagePreprocessor preprocessor, Device device, CancellationToken cancellationToken) : IBatchSource
{
    private readonly int inputLength = preprocessor.InputLength;
    private readonly int inputSize = preprocessor.Config.InputSize;

    public int[] TrainLabels { get; } = [.. train.Labels];

    public int[] ValidationLabels { get; } = [.. validation.Labels];

    public IReadOnlyList<string> ValidationSources => validation.Sources;

    public IReadOnlyList<float[]> VerificationInputs => verificationInputs;

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        // One seed per image, drawn in order, then decode and augment in parallel: deterministic whatever the scheduling.
        var seeds = indices.Select(_ => random.Next()).ToArray();
        var buffer = new float[indices.Length * inputLength];
        loader.Stream([.. indices.Select(i => train.Images[i])], (i, decoded) =>
        {
            using var working = Augmentation.WorkingImage(decoded, preprocessor.Config);
            augmentation.Apply(working, new Random(seeds[i]), buffer.AsSpan(i * inputLength, inputLength));
        }, cancellationToken);
        var labels = indices.Select(i => (long)TrainLabels[i]).ToArray();
        return (tensor(buffer, [indices.Length, 3, inputSize, inputSize]).to(device), tensor(labels).to(device));
    }

    public Tensor ValidationBatch(int start, int count)
    {
        var buffer = new float[count * inputLength];
        loader.Stream(validation.Images.GetRange(start, count), (i, decoded) => preprocessor.Preprocess(decoded, buffer.AsSpan(i * inputLength, inputLength)), cancellationToken);
        return tensor(buffer, [count, 3, inputSize, inputSize]).to(device);
    }

    public void Dispose()
    {
    }
}
