using System.Text.Json;
using Azure;
using Azure.Storage.Blobs;
using Azure.Storage.Blobs.Models;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;

namespace ServerlessClassifier.ModelCore.Features;

/// <summary>
/// What a features job's consumers compute head-mode features with: the exported ONNX graph (its <c>features</c>
/// output is the frozen backbone's pooled features), its preprocessing and its mean image, uploaded once per job under
/// <c>&lt;job&gt;/extractor/</c> of the jobs container. The decoder limits are not part of it: consumers decode with the
/// default limits (<see cref="ImageLimits"/>), which are also training's unless a caller sets others.
/// </summary>
public sealed record FeatureExtractor(byte[] Graph, PreprocessingConfig Preprocessing, float[]? MeanImage)
{
    private const string Folder = "extractor";
    private const string GraphFile = "model.onnx";
    private const string PreprocessingFile = "preprocessing.json";
    private const string MeanImageFile = "mean.bin";

    public async Task UploadAsync(BlobContainerClient jobs, string jobId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        await jobs.GetBlobClient($"{jobId}/{Folder}/{GraphFile}").UploadAsync(BinaryData.FromBytes(Graph), overwrite: true, cancellationToken).ConfigureAwait(false);
        await jobs.GetBlobClient($"{jobId}/{Folder}/{PreprocessingFile}")
            .UploadAsync(BinaryData.FromString(JsonSerializer.Serialize(Preprocessing, ModelManifest.JsonOptions)), overwrite: true, cancellationToken).ConfigureAwait(false);
        if (MeanImage is not null)
        {
            using var stream = new MemoryStream();
            Imaging.MeanImage.Write(stream, MeanImage);
            await jobs.GetBlobClient($"{jobId}/{Folder}/{MeanImageFile}").UploadAsync(BinaryData.FromBytes(stream.ToArray()), overwrite: true, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <exception cref="InvalidDataException">The job has no extractor, it is not readable, or a file of it is over <see cref="ModelPackage.MaxFileBytes"/> (refused before it is downloaded).</exception>
    public static async Task<FeatureExtractor> DownloadAsync(BlobContainerClient jobs, string jobId, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(jobs);
        async Task<BinaryData?> ReadAsync(string file)
        {
            var blob = jobs.GetBlobClient($"{jobId}/{Folder}/{file}");
            BlobProperties properties;
            try
            {
                properties = (await blob.GetPropertiesAsync(cancellationToken: cancellationToken).ConfigureAwait(false)).Value;
            }
            catch (RequestFailedException e) when (e.Status == 404)
            {
                return null;
            }
            // The size from the properties, checked before the download allocates it; the download is of that version only.
            try
            {
                ModelPackage.CheckFileSize(properties.ContentLength, $"Job {jobId}: {Folder}/{file}");
            }
            catch (ModelIntegrityException e)
            {
                throw new InvalidDataException(e.Message, e);
            }
            var options = new BlobDownloadOptions { Conditions = new BlobRequestConditions { IfMatch = properties.ETag } };
            return (await blob.DownloadContentAsync(options, cancellationToken).ConfigureAwait(false)).Value.Content;
        }
        var graph = await ReadAsync(GraphFile).ConfigureAwait(false) ?? throw new InvalidDataException($"Job {jobId} has no feature extractor ({Folder}/{GraphFile}).");
        var preprocessingJson = await ReadAsync(PreprocessingFile).ConfigureAwait(false) ?? throw new InvalidDataException($"Job {jobId} has no {Folder}/{PreprocessingFile}.");
        PreprocessingConfig preprocessing;
        try
        {
            preprocessing = JsonSerializer.Deserialize<PreprocessingConfig>(preprocessingJson.ToString(), ModelManifest.JsonOptions) ?? throw new JsonException("empty");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Job {jobId}: {Folder}/{PreprocessingFile} is not a preprocessing config ({e.Message}).", e);
        }
        float[]? mean = null;
        if (preprocessing.MeanImageFile is not null)
        {
            var bytes = await ReadAsync(MeanImageFile).ConfigureAwait(false) ?? throw new InvalidDataException($"Job {jobId}: the preprocessing names a mean image and {Folder}/{MeanImageFile} is missing.");
            using var stream = bytes.ToStream();
            mean = Imaging.MeanImage.Read(stream, preprocessing.InputSize);
        }
        return new FeatureExtractor(graph.ToArray(), preprocessing, mean);
    }
}
