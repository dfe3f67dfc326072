namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// One collection, run one test at a time: the fixture builds the model with TorchSharp (libtorch's global
/// state), and every test loads ONNX sessions and classifies on a 2-core machine.
/// </summary>
[CollectionDefinition(Collection, DisableParallelization = true)]
public sealed class FunctionsTests : ICollectionFixture<ServingModelFixture>
{
    public const string Collection = "Functions";
}
