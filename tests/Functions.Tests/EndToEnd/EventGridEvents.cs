using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>The Event Grid schema events Azure posts to <c>/runtime/webhooks/blobs</c>.</summary>
internal static class EventGridEvents
{
    public static object[] Validation(string code) =>
    [
        new Dictionary<string, object?>
        {
            ["id"] = Guid.NewGuid().ToString(),
            ["topic"] = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/e2e/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
            ["subject"] = "",
            ["data"] = new Dictionary<string, object?> { ["validationCode"] = code },
            ["eventType"] = "Microsoft.EventGrid.SubscriptionValidationEvent",
            ["eventTime"] = DateTimeOffset.UtcNow,
            ["metadataVersion"] = "1",
            ["dataVersion"] = "2",
        },
    ];

    public static object[] BlobCreated(BlobClient blob, BlobProperties properties) =>
    [
        new Dictionary<string, object?>
        {
            ["id"] = Guid.NewGuid().ToString(),
            ["topic"] = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/e2e/providers/Microsoft.Storage/storageAccounts/devstoreaccount1",
            ["subject"] = $"/blobServices/default/containers/{blob.BlobContainerName}/blobs/{blob.Name}",
            ["eventType"] = "Microsoft.Storage.BlobCreated",
            ["eventTime"] = DateTimeOffset.UtcNow,
            ["data"] = new Dictionary<string, object?>
            {
                ["api"] = "PutBlob",
                ["requestId"] = Guid.NewGuid().ToString(),
                // As Azure sends it: without the quotes (the extension adds them; a quoted one never matches the blob).
                ["eTag"] = properties.ETag.ToString().Trim('"'),
                ["contentType"] = properties.ContentType,
                ["contentLength"] = properties.ContentLength,
                ["blobType"] = "BlockBlob",
                ["url"] = blob.Uri.ToString(),
                ["sequencer"] = "0000000000000000000000000000000000000000000000000",
                ["storageDiagnostics"] = new Dictionary<string, object?> { ["batchId"] = Guid.NewGuid().ToString() },
            },
            ["dataVersion"] = "",
            ["metadataVersion"] = "1",
        },
    ];
}
