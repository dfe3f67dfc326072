using System.Text.Json;
using Azure.Storage.Blobs;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>
/// Prediction blobs read as plain JSON (the contract's field names: <c>status</c>, <c>label</c>, <c>error.code</c>),
/// so these tests do not depend on the C# type that writes them.
/// </summary>
internal static class Predictions
{
    /// <summary>Every blob of the predictions container, by name, parsed; a blob that is not one complete JSON object fails the test.</summary>
    public static async Task<Dictionary<string, JsonElement>> ReadAllAsync(BlobContainerClient predictions)
    {
        var all = new Dictionary<string, JsonElement>(StringComparer.Ordinal);
        if (!(await predictions.ExistsAsync()).Value)
        {
            return all;
        }
        await foreach (var blob in predictions.GetBlobsAsync())
        {
            all.Add(blob.Name, await ReadAsync(predictions, blob.Name));
        }
        return all;
    }

    public static async Task<JsonElement> ReadAsync(BlobContainerClient predictions, string blobName)
    {
        var content = (await predictions.GetBlobClient(blobName).DownloadContentAsync()).Value.Content.ToArray();
        Assert.True(content.Length > 0, $"{blobName} is empty");
        using var document = JsonDocument.Parse(content);
        Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
        var status = document.RootElement.GetProperty("status").GetString();
        Assert.True(status is "ok" or "rejected", $"{blobName}: status {status}");
        return document.RootElement.Clone();
    }

    public static string Status(this JsonElement prediction) => prediction.GetProperty("status").GetString()!;

    public static string? Label(this JsonElement prediction) =>
        prediction.TryGetProperty("label", out var label) && label.ValueKind == JsonValueKind.String ? label.GetString() : null;

    public static string? ErrorCode(this JsonElement prediction) =>
        prediction.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.Object ? error.GetProperty("code").GetString() : null;
}
