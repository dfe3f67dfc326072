namespace ServerlessClassifier.Functions.Tests;

/// <summary>
/// One collection, run one test at a time: the tests share the fixture's models, every test loads ONNX sessions
/// and classifies on a 2-core machine, and the end-to-end tests time the host with nothing else of theirs beside it.
/// </summary>
[CollectionDefinition(Collection, DisableParallelization = true)]
public sealed class FunctionsTests : ICollectionFixture<ServingModelFixture>
{
    public const string Collection = "Functions";
}
