using ServerlessClassifier.ModelCore.Inference;
using System.Collections.Concurrent;
using Azure;
using Microsoft.Extensions.Azure;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.Functions.Services;
using Xunit.Abstractions;

namespace ServerlessClassifier.Functions.Tests.Reliability;

/// <summary>Storage going away under running invocations, and a publish that never finished.</summary>
[Collection(FunctionsTests.Collection)]
public sealed class StorageFaultTests(ServingModelFixture model, ITestOutputHelper output)
{
    [Fact]
    public async Task StorageKilledMidRun_EveryImageEndsWithExactlyOneCompletePrediction()
    {
        await using var azurite = await PrivateAzurite.StartAsync();
        // One quick SDK retry (default: 3, exponential from 0.8 s) so that the outage reaches the function within
        // seconds: the failure path under test is the host's retry, then the sweep.
        await using var host = await TestHost.StartAsync(connectionString: azurite.ConnectionString, configure: services =>
            services.AddAzureClients(clients => clients.ConfigureDefaults(options =>
            {
                options.Retry.MaxRetries = 1;
                options.Retry.Delay = TimeSpan.FromMilliseconds(100);
            })));
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var expected = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 0; i < 30; i++)
        {
            var label = ServingModelFixture.Labels[i % 3];
            var name = i % 10 == 9 ? $"fault/{i:D2}-text.png" : $"fault/{i:D2}-{label}.png";
            var content = i % 10 == 9 ? "not an image"u8.ToArray() : ServingModelFixture.Image(label, seed: 500 + i, width: 48, height: 48);
            expected[await host.UploadAsync(name, content)] = i % 10 == 9 ? "rejected" : label;
        }
        Assert.Equal("v1", (await host.ModelProvider.RefreshAsync())!.Version);
        // Azurite saves its blob index every 5 s (LokiJS autosave); wait so that the uploads survive the SIGKILL
        // (an acknowledged write lost by the emulator is not what this test is about; the sweep would cover it anyway).
        await Task.Delay(TimeSpan.FromSeconds(6));

        var function = host.Function<ClassifyUploadedImage>();
        var failed = new ConcurrentBag<string>();
        var completed = 0;
        var killed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fault = Task.Run(async () =>
        {
            while (Volatile.Read(ref completed) < 8)
            {
                await Task.Delay(10);
            }
            azurite.Kill();
            output.WriteLine($"killed after {Volatile.Read(ref completed)} invocations; blob port accepts: {await azurite.AcceptsBlobAsync()}");
            killed.SetResult();
            await Task.Delay(TimeSpan.FromSeconds(4));
            await azurite.StartAgainAsync();
        });
        var names = expected.Keys.ToList();
        async ValueTask InvokeAsync(int i, CancellationToken token)
        {
            try
            {
                await function.Run(host.Images.GetBlobClient(names[i]), names[i], token);
            }
            catch (Exception e) when (e is RequestFailedException or AggregateException or HttpRequestException or IOException)
            {
                failed.Add(names[i]); // the host would retry this invocation
            }
            Interlocked.Increment(ref completed);
        }
        var options = new ParallelOptions { MaxDegreeOfParallelism = 4 };
        // Invocations 0-11 run first (the kill lands while 8-11 are in flight; those may hang until storage is back),
        // invocations 12-29 start on their own lanes as soon as storage is gone.
        var beforeKill = Parallel.ForEachAsync(Enumerable.Range(0, 12), options, InvokeAsync);
        await Task.WhenAny(killed.Task, fault);
        Assert.True(killed.Task.IsCompleted, $"Azurite was not killed: {fault.Exception}");
        var duringOutage = Parallel.ForEachAsync(Enumerable.Range(12, names.Count - 12), options, InvokeAsync);
        await Task.WhenAll(beforeKill, duringOutage);
        await fault;
        output.WriteLine($"{failed.Count} of {names.Count} invocations failed while storage was down");
        Assert.NotEmpty(failed);

        // The host's retry of each failed invocation, then the timer sweep as the safety net.
        var retriedFailures = 0;
        foreach (var name in failed)
        {
            try
            {
                await function.Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
            }
            catch (Exception e) when (e is RequestFailedException or AggregateException)
            {
                retriedFailures++;
            }
        }
        var sweep = await host.Get<UnclassifiedImageSweeper>().SweepAsync(CancellationToken.None);
        output.WriteLine($"retries failing again: {retriedFailures}; sweep found {sweep.Found} image(s) without a prediction, classified {sweep.Classified}, rejected {sweep.Rejected}");

        var predictions = await Predictions.ReadAllAsync(host.Predictions);
        Assert.Equal(expected.Keys.Select(PredictionDocument.BlobNameFor).Order(StringComparer.Ordinal), predictions.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, outcome) in expected)
        {
            var prediction = predictions[PredictionDocument.BlobNameFor(name)];
            if (outcome == "rejected")
            {
                Assert.Equal(("rejected", "UnsupportedFormat"), (prediction.Status(), prediction.ErrorCode()));
            }
            else
            {
                Assert.Equal(("ok", outcome), (prediction.Status(), prediction.Label()));
            }
        }
    }

    [Fact]
    public async Task PublishInterruptedBeforeThePointerMoved_LeavesTheOldModelServing()
    {
        await using var host = await TestHost.StartAsync();
        await host.Store.PublishAsync(model.Folder, version: "v1");
        var provider = host.ModelProvider;
        Assert.Equal("v1", (await provider.RefreshAsync())!.Version);

        // Every file of v2 uploaded, current.json not moved: what a publisher killed between the two steps leaves.
        await host.Store.PublishAsync(model.ReversedFolder, makeCurrent: false, version: "v2");

        Assert.Equal("v1", (await provider.RefreshAsync())!.Version);
        Assert.Equal(1, provider.LoadCount);
        var name = await host.UploadAsync("after-interrupted-publish.png", ServingModelFixture.Image("red", seed: 601, width: 48, height: 48));
        await host.Function<ClassifyUploadedImage>().Run(host.Images.GetBlobClient(name), name, CancellationToken.None);
        var prediction = await Predictions.ReadAsync(host.Predictions, PredictionDocument.BlobNameFor(name));
        Assert.Equal(("red", "v1"), (prediction.Label(), prediction.GetProperty("modelVersion").GetString()));
    }
}
