using System.Security.Cryptography;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.ModelCore.Tests.Storage;

public sealed class BlobRoundTripTests
{
    [Fact]
    public async Task UploadThenDownload_ReturnsSameBytesAndMetadata()
    {
        var container = await TestStorage.CreateContainerAsync("roundtrip");
        try
        {
            var payload = RandomNumberGenerator.GetBytes(256 * 1024 + 17);
            var blob = container.GetBlobClient("folder/näme with spaces.bin");
            await blob.UploadAsync(new BinaryData(payload), new BlobUploadOptions
            {
                HttpHeaders = new BlobHttpHeaders { ContentType = "application/octet-stream" },
                Metadata = new Dictionary<string, string> { ["source"] = "test" },
            });

            var downloaded = await blob.DownloadContentAsync();
            Assert.Equal(payload, downloaded.Value.Content.ToArray());
            Assert.Equal("application/octet-stream", downloaded.Value.Details.ContentType);
            Assert.Equal("test", downloaded.Value.Details.Metadata["source"]);

            var listed = new List<string>();
            await foreach (var item in container.GetBlobsAsync(new GetBlobsOptions { Prefix = "folder/" }))
            {
                listed.Add(item.Name);
            }
            Assert.Equal(["folder/näme with spaces.bin"], listed);
        }
        finally
        {
            await container.DeleteAsync();
        }
    }
}
