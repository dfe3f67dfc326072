using ServerlessClassifier.ModelCore.Inference;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Threading.Channels;
using ServerlessClassifier.Functions.Functions;
using Xunit.Abstractions;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>Bursts of uploads, at-least-once delivery, many invocations at once: one prediction per image, no more, no less.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class LoadTests(ServingModelFixture model, ITestOutputHelper output)
{
    private const int Bursts = 5;
    private const int BurstSize = 100;
    private const int Concurrency = 16;

    [Fact]
    public async Task FiveHundredImagesInBursts_WithDuplicateDeliveries_GetExactlyFiveHundredPredictions()
    {
        await using var host = await TestHost.StartAsync(models: await model.SharedModelsAsync());
        var function = host.Function<ClassifyUploadedImage>();
        var expected = new ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var deliveries = Channel.CreateUnbounded<string>();
        var invocations = 0;
        var failures = new ConcurrentBag<Exception>();
        var clock = Stopwatch.StartNew();

        var consumers = Enumerable.Range(0, Concurrency).Select(_ => Task.Run(async () =>
        {
            await foreach (var name in deliveries.Reader.ReadAllAsync())
            {
                try
                {
                    await function.Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
                }
#pragma warning disable CA1031 // collected and asserted on below: the test reports every failed invocation
                catch (Exception e)
#pragma warning restore CA1031
                {
                    failures.Add(e);
                }
                Interlocked.Increment(ref invocations);
            }
        })).ToList();

        for (var burst = 0; burst < Bursts; burst++)
        {
            var names = Enumerable.Range(burst * BurstSize, BurstSize).Select(i => $"load/{burst}/{i:D3}-{ServingModelFixture.Labels[i % 3]}.png").ToList();
            await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (name, token) =>
            {
                var index = int.Parse(name.AsSpan(name.LastIndexOf('/') + 1, 3), System.Globalization.CultureInfo.InvariantCulture);
                var label = ServingModelFixture.Labels[index % 3];
                await host.UploadAsync(name, ServingModelFixture.Image(label, seed: 10_000 + index, width: 48, height: 48));
                expected[name] = label;
                await deliveries.Writer.WriteAsync(name, token);
            });
            // At-least-once delivery: every tenth image of the burst is delivered a second time.
            foreach (var name in names.Where((_, i) => i % 10 == 3))
            {
                await deliveries.Writer.WriteAsync(name);
            }
        }
        deliveries.Writer.Complete();
        await Task.WhenAll(consumers);
        clock.Stop();

        Assert.Empty(failures);
        Assert.Equal(Bursts * BurstSize * 11 / 10, invocations);
        var predictions = await Predictions.ReadAllAsync(host.Predictions);
        Assert.Equal(Bursts * BurstSize, predictions.Count);
        Assert.Equal(expected.Keys.Select(PredictionDocument.BlobNameFor).Order(StringComparer.Ordinal), predictions.Keys.Order(StringComparer.Ordinal));
        var wrong = expected.Count(e => predictions[PredictionDocument.BlobNameFor(e.Key)].Label() != e.Value);
        Assert.Equal(0, wrong);
        output.WriteLine($"{Bursts * BurstSize} images ({invocations} deliveries, {Concurrency} concurrent) uploaded and classified in {clock.Elapsed.TotalSeconds:F1} s: " +
            $"{Bursts * BurstSize / clock.Elapsed.TotalSeconds:F1} images/s (upload + classify + write, {Environment.ProcessorCount} cores)");
    }
}
