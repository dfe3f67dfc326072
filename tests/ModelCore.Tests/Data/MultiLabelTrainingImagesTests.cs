using ServerlessClassifier.ModelCore.Data;

namespace ServerlessClassifier.ModelCore.Tests.Data;

/// <summary>
/// A multi-label model's approved images in a local folder (<see cref="TrainingImages.AddMultiLabelAsync"/>): each image
/// beside a row of <c>labels.csv</c>, no row lost to concurrent adds, none written twice, and the file read back as the
/// multi-label manifest <c>train --multilabel</c> reads.
/// </summary>
public sealed class MultiLabelTrainingImagesTests : IDisposable
{
    private readonly DirectoryInfo folder = Directory.CreateTempSubdirectory("multilabel-images-");

    [Fact]
    public async Task AddMultiLabel_WritesEachImageBesideItsRow_ConcurrentAddsLoseNoRow_AndTheSameImageIsNotListedTwice()
    {
        var training = TrainingImages.Local(folder.FullName);
        string[][] kinds = [["dog", "cat"], [], ["cat"], ["dog"]];
        string[][] sets = [.. Enumerable.Range(0, 32).Select(i => kinds[i % 4])];

        // On the thread pool, so that the adds overlap (as approvals by several people do).
        var added = await Task.WhenAll(sets.Select((labels, i) => Task.Run(() => training.AddMultiLabelAsync(labels, $"{i}.png", new byte[] { (byte)i, 1, 2 }))));
        var again = await training.AddMultiLabelAsync(["cat"], "0.png", new byte[] { 0, 1, 2 }); // the same bytes under the name: present, no second row

        Assert.All(added, a => Assert.False(a.AlreadyPresent));
        Assert.Equal(("0.png", true), (again.Name, again.AlreadyPresent));
        var lines = await File.ReadAllLinesAsync(Path.Combine(folder.FullName, TrainingImages.MultiLabelCsv));
        Assert.Equal("image,labels", lines[0]);
        Assert.Equal(sets.Select((labels, i) => $"{i}.png,{string.Join(';', labels.Order(StringComparer.Ordinal))}").Order(StringComparer.Ordinal),
            lines.Skip(1).Order(StringComparer.Ordinal));
        Assert.Throws<ArgumentException>(() => training.AddMultiLabelAsync(["cat;dog"], "x.png", new byte[] { 9 }).GetAwaiter().GetResult());
        Assert.False(File.Exists(Path.Combine(folder.FullName, "x.png")));

        var manifest = await DataManifest.ReadAsync(Path.Combine(folder.FullName, TrainingImages.MultiLabelCsv), new ManifestSources(), new DatasetOptions { MultiLabel = true });
        Assert.Equal(sets.Select((labels, i) => (Name: $"{i}.png", Labels: string.Join(';', labels.Order(StringComparer.Ordinal)))).OrderBy(r => r.Name, StringComparer.Ordinal),
            manifest.Images.Select(i => (Name: i.Image.Source, Labels: string.Join(';', i.Image.Labels!))).OrderBy(r => r.Name, StringComparer.Ordinal));
    }

    public void Dispose() => folder.Delete(recursive: true);
}
