using System.Diagnostics;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.ModelCore.Imaging;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.Tests.Common;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;
using Xunit.Abstractions;

namespace ServerlessClassifier.ModelCore.Tests.Reliability;

/// <summary>
/// Thousands of mutated real images (bit flips, truncation, header edits) through the decoder and the
/// serving classifier: each ends in a classification or a typed <see cref="ImageRejectedException"/>,
/// nothing crashes or hangs, and memory stays bounded.
/// </summary>
[Collection(TorchTests.Collection)]
public sealed class ImageFuzzTests(ITestOutputHelper output) : IDisposable
{
    private const int MutantsPerSeed = 400;
    private static readonly TimeSpan PerInputBound = TimeSpan.FromSeconds(5);
    private readonly string folder = Path.Combine(Path.GetTempPath(), $"fuzz-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public async Task MutatedImages_AreClassifiedOrRejectedWithATypedError()
    {
        TestModels.SaveColourModel(folder);
        using var pipeline = ClassificationPipeline.CreateServing(await ModelPackage.LoadAsync(folder));
        var seeds = SeedImages();
        var random = new Random(2026);
        var outcomes = new Dictionary<string, int>(StringComparer.Ordinal);
        var slowest = TimeSpan.Zero;

        // Warm up, then measure memory across the whole run.
        pipeline.Classify(seeds[0].Data);
        GC.Collect();
        var before = Process.GetCurrentProcess().WorkingSet64;

        var total = 0;
        foreach (var (name, data) in seeds)
        {
            for (var i = 0; i < MutantsPerSeed; i++)
            {
                var mutant = Mutate(data, random, out var kind);
                var clock = Stopwatch.StartNew();
                var run = Task.Run(() =>
                {
                    try
                    {
                        var result = pipeline.Classify(mutant, top: 3);
                        Assert.Contains(result.Label, TestModels.ColourLabels.Append(ClassificationPipeline.UnknownLabel));
                        return "classified";
                    }
                    catch (ImageRejectedException e)
                    {
                        Assert.True(Enum.IsDefined(e.Code), $"undefined code {e.Code}");
                        Assert.False(string.IsNullOrWhiteSpace(e.Message));
                        return $"rejected:{e.Code}";
                    }
                });
                var finished = await Task.WhenAny(run, Task.Delay(PerInputBound));
                Assert.True(finished == run, $"{name} {kind} mutant #{i} took longer than {PerInputBound.TotalSeconds} s");
                slowest = clock.Elapsed > slowest ? clock.Elapsed : slowest;
                var outcome = await run; // an exception other than ImageRejectedException fails the test here
                outcomes[outcome] = outcomes.GetValueOrDefault(outcome) + 1;
                total++;
            }
        }

        GC.Collect();
        var growthMb = (Process.GetCurrentProcess().WorkingSet64 - before) / 1048576.0;
        output.WriteLine($"{total} mutants of {seeds.Count} real images; slowest {slowest.TotalMilliseconds:F0} ms; working set +{growthMb:F0} MB");
        foreach (var (outcome, count) in outcomes.OrderByDescending(o => o.Value))
        {
            output.WriteLine($"  {outcome}: {count}");
        }
        Assert.Equal(seeds.Count * MutantsPerSeed, total);
        Assert.True(outcomes.ContainsKey("classified") && outcomes.Keys.Any(k => k.StartsWith("rejected", StringComparison.Ordinal)),
            "the mutations should produce both decodable and undecodable inputs");
        // Bound: decoded images here are at most a few MB; 256 MB of growth would mean buffers are kept.
        Assert.True(growthMb < 256, $"working set grew by {growthMb:F0} MB");
    }

    /// <summary>Real emoji, re-encoded in every supported format (and a larger JPEG for the reduced-scale path).</summary>
    private static List<(string Name, byte[] Data)> SeedImages()
    {
        var seeds = new List<(string, byte[])>();
        var emoji = TestAssets.SampleEmoji(3);
        seeds.Add(("png", File.ReadAllBytes(emoji[0])));
        using var image = Image.Load<Rgba32>(emoji[1]);
        seeds.Add(("jpeg", Encode(image, (i, s) => i.SaveAsJpeg(s))));
        seeds.Add(("gif", Encode(image, (i, s) => i.SaveAsGif(s))));
        seeds.Add(("bmp", Encode(image, (i, s) => i.SaveAsBmp(s))));
        seeds.Add(("webp", Encode(image, (i, s) => i.SaveAsWebp(s))));
        seeds.Add(("tiff", Encode(image, (i, s) => i.SaveAsTiff(s))));
        using var large = Image.Load<Rgba32>(emoji[2]);
        large.Mutate(x => x.Resize(1024, 1024));
        seeds.Add(("large-jpeg", Encode(large, (i, s) => i.SaveAsJpeg(s))));
        return seeds;
    }

    private static byte[] Encode(Image<Rgba32> image, Action<Image<Rgba32>, Stream> save)
    {
        using var stream = new MemoryStream();
        save(image, stream);
        return stream.ToArray();
    }

    private static byte[] Mutate(byte[] data, Random random, out string kind)
    {
        var copy = (byte[])data.Clone();
        switch (random.Next(4))
        {
            case 0:
                kind = "bit-flip";
                for (var i = random.Next(1, 17); i > 0; i--)
                {
                    copy[random.Next(copy.Length)] ^= (byte)(1 << random.Next(8));
                }
                return copy;
            case 1:
                kind = "truncation";
                return copy[..random.Next(0, copy.Length)];
            case 2:
                kind = "header-edit";
                for (var i = random.Next(1, 6); i > 0; i--)
                {
                    copy[random.Next(Math.Min(64, copy.Length))] = random.Next(3) switch { 0 => 0x00, 1 => 0xFF, _ => (byte)random.Next(256) };
                }
                return copy;
            default:
                kind = "splice";
                var at = random.Next(copy.Length);
                var junk = new byte[random.Next(1, 512)];
                random.NextBytes(junk);
                return [.. copy[..at], .. junk, .. copy[at..]];
        }
    }
}
