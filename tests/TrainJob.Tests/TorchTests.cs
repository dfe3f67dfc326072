namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>Tests that touch libtorch state run one at a time: libtorch's global state and thread pools are shared.</summary>
[CollectionDefinition(Collection, DisableParallelization = true)]
public sealed class TorchTests
{
    public const string Collection = "Torch";
}
