using Azure.Storage.Blobs;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// The Azurite instance started by the test script (scripts/test.sh). Tests read its connection
/// string from the environment; there is no fallback to a guessed default, so a run without the
/// script fails with a message that says how to run it.
/// </summary>
public static class TestStorage
{
    public const string ConnectionStringVariable = "CLASSIFIER_TEST_STORAGE";

    public static string ConnectionString =>
        Environment.GetEnvironmentVariable(ConnectionStringVariable) is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException(
                $"{ConnectionStringVariable} is not set. Run the tests with scripts/test.sh, which starts Azurite and sets it.");

    public static BlobServiceClient CreateServiceClient() => new(ConnectionString);

    /// <summary>A container with a unique name, so tests never see each other's blobs.</summary>
    public static async Task<BlobContainerClient> CreateContainerAsync(string prefix)
    {
        var container = CreateServiceClient().GetBlobContainerClient($"{prefix}-{Guid.NewGuid():N}"[..Math.Min(63, prefix.Length + 33)]);
        await container.CreateAsync();
        return container;
    }
}
