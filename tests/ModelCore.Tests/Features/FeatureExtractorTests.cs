using Azure.Storage.Blobs.Specialized;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Features;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.ModelCore.Tests.Features;

/// <summary>A features job's extractor (<c>&lt;job&gt;/extractor/</c> of the jobs container) read back against Azurite.</summary>
public sealed class FeatureExtractorTests
{
    [Fact]
    public async Task Download_RefusesAFileOverTheModelFileLimit_FromItsPropertiesBeforeDownloadingIt()
    {
        var container = await TestStorage.CreateContainerAsync("jobs");
        try
        {
            const string job = "job-1";
            var extractor = new FeatureExtractor([1, 2, 3], new PreprocessingConfig { InputSize = 32 }, MeanImage: null);
            await extractor.UploadAsync(container, job);
            Assert.Equal(extractor.Graph, (await FeatureExtractor.DownloadAsync(container, job)).Graph);

            // A page blob declares its size without holding the bytes: 2 GiB, over what one array (a model file) can hold.
            var size = ModelPackage.MaxFileBytes + 512 - (ModelPackage.MaxFileBytes % 512);
            await container.GetBlobClient($"{job}/extractor/model.onnx").DeleteAsync();
            await container.GetPageBlobClient($"{job}/extractor/model.onnx").CreateAsync(size);

            var refused = await Assert.ThrowsAsync<InvalidDataException>(() => FeatureExtractor.DownloadAsync(container, job));
            Assert.Contains($"extractor/model.onnx: {size} bytes is larger than a model file can be", refused.Message, StringComparison.Ordinal);
        }
        finally
        {
            await container.DeleteAsync();
        }
    }
}
