using static TorchSharp.torch;

namespace ServerlessClassifier.ModelCore.Training;

/// <summary>Head mode: batches of the cached frozen-backbone features.</summary>
internal sealed class FeatureBatches : IBatchSource
{
    private readonly Tensor train;
    private readonly Tensor validation;
    private readonly Tensor targets;

    public FeatureBatches(FeatureCache cache, Device device)
    {
        TrainLabels = cache.TrainLabels;
        ValidationLabels = cache.ValidationLabels;
        ValidationSources = cache.ValidationSources;
        train = tensor(cache.Train, [cache.TrainLabels.Length, cache.NumFeatures]).to(device);
        validation = tensor(cache.Validation, [cache.ValidationLabels.Length, cache.NumFeatures]).to(device);
        targets = tensor(cache.TrainLabels.Select(l => (long)l).ToArray()).to(device);
    }

    public int[] TrainLabels { get; }

    public int[] ValidationLabels { get; }

    public IReadOnlyList<string> ValidationSources { get; }

    public IReadOnlyList<float[]> VerificationInputs => [];

    public (Tensor Inputs, Tensor Targets) TrainBatch(int[] indices, Random random)
    {
        var index = tensor(indices.Select(i => (long)i).ToArray()).to(train.device);
        return (train.index_select(0, index), targets.index_select(0, index));
    }

    public Tensor ValidationBatch(int start, int count) => validation.narrow(0, start, count);

    public void Dispose()
    {
        train.Dispose();
        validation.Dispose();
        targets.Dispose();
    }
}
