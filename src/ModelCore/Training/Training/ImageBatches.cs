using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>Finetune and full modes: augmented training images and preprocessed validation images.</summary>
internal sealed class ImageBatches(LoadedSplit<Image<Rgb24>> train, LoadedSplit<float[]> validation, Augmentation augmentation, int inputLength, int inputSize, Device device) : IBatchSource
{
    public int[] TrainLabels { get; } = [.. train.Labels];

    public int[] ValidationLabels { get; } = [.. validation.Labels];

    public IReadOnlyList<string> ValidationSources => validation.Sources;

    public IReadOnlyList<float[]> VerificationInputs => [.. validation.Items.Take(TrainingData.VerificationImages)];

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        // One seed per image, drawn in order, then augment in parallel: deterministic whatever the scheduling.
        var seeds = indices.Select(_ => random.Next()).ToArray();
        var buffer = new float[indices.Length * inputLength];
        Parallel.For(0, indices.Length, i => augmentation.Apply(train.Items[indices[i]], new Random(seeds[i]), buffer.AsSpan(i * inputLength, inputLength)));
        var labels = indices.Select(i => (long)TrainLabels[i]).ToArray();
        return (tensor(buffer, [indices.Length, 3, inputSize, inputSize]).to(device), tensor(labels).to(device));
    }

    public Tensor ValidationBatch(int start, int count)
    {
        var buffer = new float[count * inputLength];
        for (var i = 0; i < count; i++)
        {
            validation.Items[start + i].CopyTo(buffer, i * inputLength);
        }
        return tensor(buffer, [count, 3, inputSize, inputSize]).to(device);
    }

    public void Dispose()
    {
    }
}
