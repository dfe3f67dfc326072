using System.Text;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Tests.Training;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.ModelCore.Tests.Data;

/// <summary>
/// Manifests (CSV, Vertex AI CSV, Azure ML JSONL, SageMaker Ground Truth) give the data set the equivalent
/// folder or container layout gives: the same labels, images, split and data hash. Bad rows are reported.
/// </summary>
public sealed class ManifestDatasetTests : IDisposable
{
    private readonly SyntheticShapes shapes = new(perClass: 5, size: 32);

    private string[] Files => [.. Directory.GetFiles(shapes.Root, "*.png", SearchOption.AllDirectories)
        .Select(f => Path.GetRelativePath(shapes.Root, f).Replace('\\', '/')).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task EachFormat_LocalPaths_GivesTheFolderLayoutsDataSet()
    {
        var folder = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var manifests = new Dictionary<ManifestFormat, string>
        {
            [ManifestFormat.Csv] = "image,label\n" + Lines(f => $"{f},{Label(f)}"),
            [ManifestFormat.VertexCsv] = Lines(f => $"UNASSIGNED,./{f},{Label(f)}"),
            [ManifestFormat.AzureMLJsonl] = Lines(f => $$"""{"image_url":"{{f}}","image_details":{"format":"png"},"label":"{{Label(f)}}"}"""),
            [ManifestFormat.GroundTruth] = Lines(f => $$$"""{"source-ref":"{{{f}}}","shape":1,"shape-metadata":{"confidence":1,"class-name":"{{{Label(f)}}}","human-annotated":"yes","type":"groundtruth/image-classification"}}"""),
        };
        foreach (var (format, text) in manifests)
        {
            var path = Write($"m-{format}.txt", text);
            var dataset = await ImageFolderDataset.FromManifestAsync(path);

            Assert.Equal(format, dataset.Manifest!.Format);
            Assert.Equal(Files.Length, dataset.Manifest.Rows);
            Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path))), dataset.Manifest.Sha256);
            AssertSame(folder, dataset);
        }
    }

    [Fact]
    public async Task Vertex_MlUseFixesTheSplit_AndTestRowsAreHeldOut()
    {
        var root = Path.Combine(Path.GetTempPath(), $"split-{Guid.NewGuid():N}");
        try
        {
            SyntheticShapes.Write(root, perClass: 4, size: 32, seed: 1, subfolder: "train");
            SyntheticShapes.Write(root, perClass: 2, size: 32, seed: 2, subfolder: "val");
            SyntheticShapes.Write(root, perClass: 1, size: 32, seed: 3, subfolder: "test");
            var folderDataset = await ImageFolderDataset.FromDirectoryAsync(root); // test/ is not a label folder there: a warning-free extra
            var rows = Directory.GetFiles(root, "*.png", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(root, f).Replace('\\', '/')).Order(StringComparer.Ordinal)
                .Select(f => $"{f.Split('/')[0] switch { "train" => "TRAINING", "val" => "validation", _ => "TEST" }},gs://bucket/{f},{f.Split('/')[1]}");
            var manifest = Path.Combine(root, "vertex.csv");
            await File.WriteAllTextAsync(manifest, string.Join('\n', rows));

            var dataset = await ImageFolderDataset.FromManifestAsync(manifest, new ManifestSources { Rewrites = [PrefixRewrite.Parse("gs://bucket/=./")] });

            Assert.Equal(ManifestFormat.VertexCsv, dataset.Manifest!.Format);
            Assert.True(dataset.ExplicitSplit);
            AssertSame(folderDataset, dataset);
            Assert.Contains(dataset.Warnings, w => w.Contains("3 image(s) marked TEST", StringComparison.Ordinal));

            await File.WriteAllTextAsync(manifest, "TRAINING,train/circle/000.png,circle\ntrain/circle/001.png,circle\n");
            var mixed = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromManifestAsync(manifest));
            Assert.Contains("1 row(s) have no ML_USE", mixed.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task BadRows_AreSkippedAndReported_NeverDroppedSilently()
    {
        await File.WriteAllBytesAsync(Path.Combine(shapes.Root, "square", "broken.jpg"), Encoding.ASCII.GetBytes("not an image"));
        var text = Lines(f => $"{f},{Label(f)}") + "\n" +
            "circle/000.png,circle\n" +            // listed twice, same label
            "./square/000.png,circle\n" +          // the same file again, another label
            "square/gone.png,square\n" +           // missing
            "triangle/001.png\n" +                 // no label
            "square/broken.jpg,square\n";          // unreadable
        var dataset = await ImageFolderDataset.FromManifestAsync(Write("bad.csv", text));

        Assert.Equal(Files.Length, dataset.Train.Count + dataset.Validation.Count);
        Assert.Equal(Files.Length + 5, dataset.Manifest!.Rows);
        var skipped = dataset.Skipped.Select(s => (s.Source, s.Code)).ToList();
        Assert.Equal(5, skipped.Count);
        Assert.Contains(("circle/000.png", SkipCodes.Duplicate), skipped);
        Assert.Contains(("square/000.png", SkipCodes.Duplicate), skipped);
        Assert.Contains(("square/gone.png", SkipCodes.Missing), skipped);
        Assert.Contains(("triangle/001.png", SkipCodes.Unlabelled), skipped);
        Assert.Contains(("square/broken.jpg", nameof(ImageErrorCode.UnsupportedFormat)), skipped);
        Assert.Contains(dataset.Skipped, s => s.Code == SkipCodes.Duplicate && s.Message.Contains("as \"circle\"; line", StringComparison.Ordinal));
        Assert.All(dataset.Train.Concat(dataset.Validation).Where(i => i.Source == "square/000.png"), i => Assert.Equal("square", i.Label));
    }

    [Theory]
    [InlineData("circle/000.png,cat,dog\n")]
    [InlineData("TRAINING,gs://b/circle/000.png,cat,dog\n")]
    [InlineData("""{"image_url":"circle/000.png","label":["cat","dog"]}""" + "\n")]
    [InlineData("""{"source-ref":"circle/000.png","animals":[0,1],"animals-metadata":{"class-map":{"0":"cat","1":"dog"},"type":"groundtruth/image-classification-multilabel"}}""" + "\n")]
    public async Task MultiLabelRows_AreDetected_AndReadAsSetsOfLabels(string text)
    {
        var manifest = await DataManifest.ReadAsync(Write("multi.txt", text), new ManifestSources { Rewrites = [PrefixRewrite.Parse("gs://b/=./")] });

        Assert.True(manifest.MultiLabel);
        Assert.Equal(["cat", "dog"], Assert.Single(manifest.Images).Image.Labels);
    }

    [Fact]
    public async Task SeparatorInACell_SplitsOnlyForMultiLabel_AndRowsWithoutLabels_AreNegatives()
    {
        var text = "image,labels\ncircle/000.png,\"dog;cat\"\ncircle/001.png,\n";

        var multiClass = await DataManifest.ReadAsync(Write("cell.csv", text), new ManifestSources());
        var multiLabel = await DataManifest.ReadAsync(Write("cell.csv", text), new ManifestSources(), new DatasetOptions { MultiLabel = true });

        Assert.False(multiClass.MultiLabel);
        Assert.Equal("dog;cat", Assert.Single(multiClass.Images).Image.Label); // exactly as before multi-label existed
        Assert.Null(multiClass.Images[0].Image.Labels);
        Assert.Equal(SkipCodes.Unlabelled, Assert.Single(multiClass.Skipped).Code);
        Assert.True(multiLabel.MultiLabel);
        Assert.Equal([["cat", "dog"], []], multiLabel.Images.Select(i => i.Image.Labels!.ToArray()));
        Assert.Empty(multiLabel.Skipped);
    }

    [Fact]
    public async Task SeveralLabels_WhenMultiLabelIsRefused_AreAClearError()
    {
        var error = await Assert.ThrowsAsync<DatasetException>(() =>
            DataManifest.ReadAsync(Write("multi.csv", "circle/000.png,cat,dog\n"), new ManifestSources(), new DatasetOptions { MultiLabel = false }));

        Assert.Contains("line 1", error.Message, StringComparison.Ordinal);
        Assert.Contains("train with --multilabel", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gs://bucket/cat/1.jpg,cat\n", "--rewrite-prefix gs://bucket/=training/")]
    [InlineData("""{"source-ref":"s3://my-bucket/cats/1.jpg","c-metadata":{"class-name":"cat"}}""" + "\n", "--rewrite-prefix s3://my-bucket/=training/")]
    [InlineData("""{"image_url":"azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/data/1.jpg","label":"cat"}""" + "\n",
        "--rewrite-prefix azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/d/paths/=training/")]
    public async Task OtherCloudsUris_SayToCopyToBlobStorageAndHowToRewrite(string text, string hint)
    {
        var error = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromManifestAsync(Write("cloud.txt", text)));

        Assert.Contains("Copy the images to the training container", error.Message, StringComparison.Ordinal);
        Assert.Contains(hint, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Blobs_ByNameUrlAndRewrite_GiveTheContainerLayoutsDataSet()
    {
        var container = await TestStorage.CreateContainerAsync("manifest");
        try
        {
            foreach (var file in Files)
            {
                await container.UploadBlobAsync(file, BinaryData.FromBytes(await File.ReadAllBytesAsync(Path.Combine(shapes.Root, file))));
            }
            var fromContainer = await ImageFolderDataset.FromBlobContainerAsync(container);
            var sources = new ManifestSources { Account = TestStorage.CreateServiceClient, TrainingContainer = container.Name };
            var elsewhere = Path.Combine(Path.GetTempPath(), $"manifests-{Guid.NewGuid():N}"); // no local images beside it
            Directory.CreateDirectory(elsewhere);
            try
            {
                var byName = Path.Combine(elsewhere, "names.csv");
                await File.WriteAllTextAsync(byName, Lines(f => $"{f},{Label(f)}"));
                var byUrl = Path.Combine(elsewhere, "urls.jsonl");
                await File.WriteAllTextAsync(byUrl, Lines(f => $$"""{"image_url":"{{container.GetBlobClient(f).Uri}}","label":"{{Label(f)}}"}"""));
                var rewritten = Path.Combine(elsewhere, "s3.manifest");
                await File.WriteAllTextAsync(rewritten, Lines(f => $$$"""{"source-ref":"s3://bucket/{{{f}}}","x-metadata":{"class-name":"{{{Label(f)}}}"}}""") + "\n" +
                    """{"source-ref":"s3://bucket/circle/none.png","x-metadata":{"class-name":"circle"}}""");

                AssertSame(fromContainer, await ImageFolderDataset.FromManifestAsync(byName, sources));
                AssertSame(fromContainer, await ImageFolderDataset.FromManifestAsync(byUrl, sources));
                var viaRewrite = await ImageFolderDataset.FromManifestAsync(rewritten, sources with { Rewrites = [new PrefixRewrite("s3://bucket/", $"{container.Name}/")] });
                AssertSame(fromContainer, viaRewrite);
                var missing = Assert.Single(viaRewrite.Skipped);
                Assert.Equal(("circle/none.png", SkipCodes.Missing), (missing.Source, missing.Code));

                await File.WriteAllTextAsync(byUrl, """{"image_url":"https://elsewhere.blob.core.windows.net/c/cat.png","label":"cat"}""");
                var foreign = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromManifestAsync(byUrl, sources));
                Assert.Contains("is not a blob of the configured storage account", foreign.Message, StringComparison.Ordinal);
            }
            finally
            {
                Directory.Delete(elsewhere, recursive: true);
            }
        }
        finally
        {
            await container.DeleteAsync();
        }
    }

    public void Dispose() => shapes.Dispose();

    private static string Label(string file) => file.Split('/')[^2];

    private string Lines(Func<string, string> row) => string.Join('\n', Files.Reverse().Select(row));

    private string Write(string name, string text)
    {
        var path = Path.Combine(shapes.Root, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static void AssertSame(ImageFolderDataset expected, ImageFolderDataset actual)
    {
        Assert.Equal(expected.Labels, actual.Labels);
        Assert.Equal(expected.Train.Select(i => (i.Source, i.Label)), actual.Train.Select(i => (i.Source, i.Label)));
        Assert.Equal(expected.Validation.Select(i => (i.Source, i.Label)), actual.Validation.Select(i => (i.Source, i.Label)));
        Assert.Equal(expected.ExplicitSplit, actual.ExplicitSplit);
        Assert.Equal(expected.DataHash, actual.DataHash);
    }
}
