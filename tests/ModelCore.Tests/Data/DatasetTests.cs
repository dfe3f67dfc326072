using ServerlessClassifier.ModelCore.Data;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Tests.Training;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.ModelCore.Tests.Data;

public sealed class DatasetTests
{
    [Fact]
    public async Task FromDirectory_SplitIsStratifiedSeededAndSorted()
    {
        using var shapes = new SyntheticShapes(perClass: 12, size: 32);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var again = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
        var otherSeed = await ImageFolderDataset.FromDirectoryAsync(shapes.Root, new DatasetOptions { Seed = 7 });

        Assert.Equal(SyntheticShapes.Labels, dataset.Labels);
        Assert.False(dataset.ExplicitSplit);
        foreach (var label in SyntheticShapes.Labels)
        {
            // round(12 * 0.2) = 2 per class, whatever the seed.
            Assert.Equal(10, dataset.TrainCounts[label]);
            Assert.Equal(2, dataset.ValidationCounts[label]);
        }
        Assert.Empty(dataset.Train.Select(i => i.Source).Intersect(dataset.Validation.Select(i => i.Source)));
        Assert.Equal(dataset.Validation.Select(i => i.Source), again.Validation.Select(i => i.Source));
        Assert.NotEqual(dataset.Validation.Select(i => i.Source), otherSeed.Validation.Select(i => i.Source));
        Assert.Equal(dataset.DataHash, otherSeed.DataHash);
        Assert.Equal(64, dataset.DataHash.Length);
        Assert.Equal(1.0, dataset.Balance.MaxMinRatio);
    }

    [Fact]
    public async Task FromDirectory_KeepsOneValidationImageForAClassOfTwo_AndReportsImbalance()
    {
        using var shapes = new SyntheticShapes(perClass: 10, size: 32);
        foreach (var file in Directory.GetFiles(Path.Combine(shapes.Root, "square")).Order(StringComparer.Ordinal).Skip(2))
        {
            File.Delete(file);
        }
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);

        Assert.Equal(1, dataset.TrainCounts["square"]);
        Assert.Equal(1, dataset.ValidationCounts["square"]);
        Assert.Equal(5.0, dataset.Balance.MaxMinRatio);
        Assert.Contains(dataset.Warnings, w => w.Contains("\"square\" has only 2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FromDirectory_UsesTrainAndValFoldersWhenPresent()
    {
        var root = Path.Combine(Path.GetTempPath(), $"split-{Guid.NewGuid():N}");
        try
        {
            SyntheticShapes.Write(root, perClass: 4, size: 32, seed: 1, subfolder: "train");
            SyntheticShapes.Write(root, perClass: 2, size: 32, seed: 2, subfolder: "val");
            var dataset = await ImageFolderDataset.FromDirectoryAsync(root);

            Assert.True(dataset.ExplicitSplit);
            Assert.Equal(SyntheticShapes.Labels, dataset.Labels);
            Assert.All(dataset.Train, i => Assert.StartsWith("train/", i.Source, StringComparison.Ordinal));
            Assert.All(dataset.Validation, i => Assert.StartsWith("val/", i.Source, StringComparison.Ordinal));
            Assert.Equal(12, dataset.Train.Count);
            Assert.Equal(6, dataset.Validation.Count);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task FromDirectory_RefusesAClassWithTooFewImages_NamingItAndTheCount()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 32);
        foreach (var file in Directory.GetFiles(Path.Combine(shapes.Root, "triangle")).Skip(1))
        {
            File.Delete(file);
        }
        var error = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromDirectoryAsync(shapes.Root));
        Assert.Contains("\"triangle\" has 1 image", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FromDirectory_RefusesASingleClass()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 32);
        Directory.Delete(Path.Combine(shapes.Root, "square"), recursive: true);
        Directory.Delete(Path.Combine(shapes.Root, "triangle"), recursive: true);
        var error = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromDirectoryAsync(shapes.Root));
        Assert.Contains("at least 2", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FromDirectory_SkipsAndListsUnreadableImages()
    {
        using var shapes = new SyntheticShapes(perClass: 4, size: 32);
        await File.WriteAllTextAsync(Path.Combine(shapes.Root, "circle", "notes.png"), "this is not an image");
        await File.WriteAllBytesAsync(Path.Combine(shapes.Root, "square", "empty.jpg"), []);
        var dataset = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);

        Assert.Equal(2, dataset.Skipped.Count);
        Assert.Contains(dataset.Skipped, s => s.Source == "circle/notes.png" && s.Code == nameof(ImageErrorCode.UnsupportedFormat) && s.Message.Length > 0);
        Assert.Contains(dataset.Skipped, s => s.Source == "square/empty.jpg" && s.Code == nameof(ImageErrorCode.Empty));
        Assert.Equal(12, dataset.Train.Count + dataset.Validation.Count);
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("..")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("bell\u0007")]
    [InlineData(".hidden")]
    [InlineData(" cats")]
    [InlineData("train")]
    [InlineData("val")]
    [InlineData("Train")]
    public void ValidateLabel_RefusesHostileAndReservedNames(string label)
    {
        var error = Assert.Throws<DatasetException>(() => TrainingLayout.ValidateLabel(label, "test"));
        Assert.Contains("rename that folder", error.Message, StringComparison.Ordinal);
        Assert.NotNull(TrainingLayout.LabelProblem(label));
    }

    [Fact]
    public void ValidateLabel_RefusesOverlongNames_AcceptsUnicode()
    {
        Assert.Throws<DatasetException>(() => TrainingLayout.ValidateLabel(new string('x', 201), "test"));
        Assert.Equal("chat noir 🐈", TrainingLayout.ValidateLabel("chat noir 🐈", "test"));
        Assert.Equal("_background", TrainingLayout.ValidateLabel("_background", "test"));
        Assert.Equal("trains", TrainingLayout.ValidateLabel("trains", "test"));
    }

    [Fact]
    public async Task FromDirectory_RefusesATrainFolderWithoutVal_InsteadOfTakingItForALabel()
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 32);
        Directory.Move(Path.Combine(shapes.Root, "circle"), Path.Combine(shapes.Root, "train"));

        var error = await Assert.ThrowsAsync<DatasetException>(() => ImageFolderDataset.FromDirectoryAsync(shapes.Root));
        Assert.Contains("Label \"train\"", error.Message, StringComparison.Ordinal);
        Assert.Contains("is reserved", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("train")]
    [InlineData("val")]
    public async Task TrainingImages_RefuseTheSplitFoldersAsLabels_SoTheNextRunStillReadsEveryLabel(string label)
    {
        using var shapes = new SyntheticShapes(perClass: 3, size: 32);
        var images = TrainingImages.Local(shapes.Root);
        var png = await File.ReadAllBytesAsync(Directory.GetFiles(Path.Combine(shapes.Root, "circle"))[0]);

        var error = await Assert.ThrowsAsync<ArgumentException>(() => images.AddAsync(label, "new.png", png));
        Assert.Contains("is reserved", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(shapes.Root, label)));
        var added = await images.AddAsync("circle", "new.png", png);
        Assert.Equal("circle/new.png", added.Name);
        Assert.Equal(["circle", "square", "triangle"], (await ImageFolderDataset.FromDirectoryAsync(shapes.Root)).Labels);
    }

    [Fact]
    public async Task FromBlobContainer_ReadsTheTrainingLayout_LikeTheSameFolder()
    {
        using var shapes = new SyntheticShapes(perClass: 4, size: 32);
        var container = await TestStorage.CreateContainerAsync("training");
        try
        {
            foreach (var file in Directory.GetFiles(shapes.Root, "*", SearchOption.AllDirectories))
            {
                await container.UploadBlobAsync("data/" + Path.GetRelativePath(shapes.Root, file).Replace('\\', '/'), BinaryData.FromBytes(await File.ReadAllBytesAsync(file)));
            }
            await container.UploadBlobAsync("outside/circle/x.png", BinaryData.FromString("not under the prefix"));
            var fromBlobs = await ImageFolderDataset.FromBlobContainerAsync(container, "data");
            var fromFolder = await ImageFolderDataset.FromDirectoryAsync(shapes.Root);
            Assert.Equal(fromFolder.Labels, fromBlobs.Labels);
            Assert.Equal(fromFolder.DataHash, fromBlobs.DataHash);
            Assert.Equal(fromFolder.Validation.Select(i => i.Source), fromBlobs.Validation.Select(i => i.Source));
            var first = fromBlobs.Train[0];
            Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(shapes.Root, first.Source)), await first.ReadAsync(default));
        }
        finally
        {
            await container.DeleteAsync();
        }
    }
}
