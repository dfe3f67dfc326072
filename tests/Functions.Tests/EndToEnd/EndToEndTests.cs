using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Azure.Storage.Blobs;
using ServerlessClassifier.ModelCore.Inference;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;
using Xunit.Abstractions;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// The published app under the real Azure Functions host (<see cref="FunctionsHostFixture"/>), driven as a user
/// would: uploads, HTTP with and without keys, an Event Grid event, a publish and a rollback under load, the sweep,
/// and the log the host writes meanwhile. In the Functions collection, so nothing else runs beside the host.
/// </summary>
[Collection(FunctionsTests.Collection)]
public sealed partial class EndToEndTests(ServingModelFixture model, FunctionsHostFixture host, ITestOutputHelper output) : IClassFixture<FunctionsHostFixture>
{
    [HostFact]
    public async Task Uploads_GoodCorruptEmptyHugeAndNested_GetExactlyOnePredictionEach()
    {
        await host.EnsureStartedAsync(model);
        var png = ServingModelFixture.Image("green", seed: 901);
        var huge = new byte[FunctionsHostFixture.MaxBytes + 1000];
        new Random(1).NextBytes(huge);
        var uploads = new (string Name, byte[] Content, string Expected)[]
        {
            ("good.png", ServingModelFixture.Image("red", seed: 902), "red"),
            ("nested/deeper/still/blue image.png", ServingModelFixture.Image("blue", seed: 903), "blue"),
            ("unicodé/grün.png", png, "green"),
            ("corrupt.png", png[..(png.Length / 2)], "Corrupt"),
            ("empty.png", [], "Empty"),
            ("huge.png", huge, "TooLarge"),
        };
        foreach (var (name, content, _) in uploads)
        {
            await host.Images.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(content));
            // The polling trigger scans by Last-Modified, which Azurite keeps to the second: one upload per second.
            await Task.Delay(TimeSpan.FromSeconds(1.1));
        }

        var etags = new Dictionary<string, string>();
        foreach (var (name, _, expected) in uploads)
        {
            var prediction = await WaitForPredictionAsync(host.Predictions, name);
            Assert.Equal(expected, prediction.Status == PredictionStatus.Ok ? prediction.Label : prediction.Error!.Code);
            Assert.Equal(PredictionSource.BlobTrigger, prediction.Source);
            etags[name] = (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value.ETag.ToString();
        }
        // Another scan of the container later: nothing is written again.
        await Task.Delay(TimeSpan.FromSeconds(5));
        foreach (var (name, _, _) in uploads)
        {
            Assert.Equal(etags[name], (await host.Predictions.GetBlobClient(name + ".json").GetPropertiesAsync()).Value.ETag.ToString());
        }
        Assert.Equal(uploads.Length, await CountAsync(host.Predictions, "", uploads.Select(u => u.Name + ".json")));
    }

    [HostFact]
    public async Task ReuploadUnderTheSameName_ReplacesThePrediction()
    {
        await host.EnsureStartedAsync(model);
        const string Name = "again/photo.png";
        await host.Images.GetBlobClient(Name).UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("red", seed: 904)));
        Assert.Equal("red", (await WaitForPredictionAsync(host.Predictions, Name)).Label);
        await Task.Delay(TimeSpan.FromSeconds(1.1));

        await host.Images.GetBlobClient(Name).UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("blue", seed: 905)), overwrite: true);
        var version = (await host.Images.GetBlobClient(Name).GetPropertiesAsync()).Value.ETag.ToString().Trim('"');

        var replaced = await WaitForPredictionAsync(host.Predictions, Name, p => p.ImageVersion == version);
        Assert.Equal("blue", replaced.Label);
    }

    [HostFact]
    public async Task Http_KeysAndStatusCodes_AreAsDocumented()
    {
        await host.EnsureStartedAsync(model);
        var red = ServingModelFixture.Image("red", seed: 906);

        using var ok = await host.Http.SendAsync(host.Classify(red, query: "?top=2"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        var answer = JsonNode.Parse(await ok.Content.ReadAsStringAsync())!;
        Assert.Equal(("red", 2), ((string?)answer["label"], answer["top"]!.AsArray().Count));

        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Http.SendAsync(host.Classify(red, withKey: false))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await host.Http.GetAsync(host.Url("api/model"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Http.GetAsync(host.Url($"api/model?code={FunctionsHostFixture.FunctionKey}"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await host.Http.GetAsync(host.Url("api/health"))).StatusCode);

        await host.AssertProblemAsync(host.Classify(red[..(red.Length / 2)]), HttpStatusCode.BadRequest, "Corrupt");
        await host.AssertProblemAsync(host.Classify([]), HttpStatusCode.BadRequest, "Empty");
        await host.AssertProblemAsync(host.Classify(red, query: "?top=0"), HttpStatusCode.BadRequest, "InvalidTop");
        await host.AssertProblemAsync(host.Classify(red, contentType: "text/plain"), HttpStatusCode.UnsupportedMediaType, "UnsupportedMediaType");
        await host.AssertProblemAsync(host.Classify("just text, not an image"u8.ToArray(), contentType: "application/octet-stream"), HttpStatusCode.UnsupportedMediaType, "UnsupportedFormat");
        await host.AssertProblemAsync(host.Classify(new byte[FunctionsHostFixture.MaxBytes + 1]), HttpStatusCode.RequestEntityTooLarge, "TooLarge");
    }

    [HostFact]
    public async Task EventGridBlobCreated_AfterTheValidationHandshake_IsClassified()
    {
        await host.EnsureStartedAsync(model);
        var webhook = host.Url($"runtime/webhooks/blobs?functionName=Host.Functions.ClassifyUploadedImageEventGrid&code={FunctionsHostFixture.BlobsExtensionKey}");
        using var handshake = new HttpRequestMessage(HttpMethod.Post, webhook) { Content = JsonContent.Create(EventGridEvents.Validation("e2e-validation-code")) };
        handshake.Headers.Add("aeg-event-type", "SubscriptionValidation");
        using var validated = await host.Http.SendAsync(handshake);
        Assert.Equal(HttpStatusCode.OK, validated.StatusCode);
        Assert.Equal("e2e-validation-code", (string?)JsonNode.Parse(await validated.Content.ReadAsStringAsync())!["validationResponse"]);

        const string Name = "eventgrid/blue.png";
        var blob = host.Images.GetBlobClient(Name);
        await blob.UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("blue", seed: 907)));
        var properties = (await blob.GetPropertiesAsync()).Value;
        using var notification = new HttpRequestMessage(HttpMethod.Post, webhook) { Content = JsonContent.Create(EventGridEvents.BlobCreated(blob, properties)) };
        notification.Headers.Add("aeg-event-type", "Notification");
        using var delivered = await host.Http.SendAsync(notification);

        Assert.Equal(HttpStatusCode.Accepted, delivered.StatusCode);
        Assert.Equal("blue", (await WaitForPredictionAsync(host.Predictions, Name)).Label);
        Assert.Equal(1, await CountAsync(host.Predictions, "eventgrid/", [Name + ".json"]));
        // The event goes through the host's blob-trigger queue to the Event Grid function, whichever delivery wrote the
        // prediction (the polling scan is on here too; the later one finds the prediction current and writes nothing).
        await WaitForAsync(() => host.Log.Any(l => l.Contains("Executed 'Functions.ClassifyUploadedImageEventGrid' (Succeeded", StringComparison.Ordinal)),
            "a run of ClassifyUploadedImageEventGrid");
    }

    [HostFact]
    public async Task PublishAndRollback_WhileRequestsRun_NoneFail()
    {
        await host.EnsureStartedAsync(model);
        var red = ServingModelFixture.Image("red", seed: 908);
        var seen = new System.Collections.Concurrent.ConcurrentQueue<(HttpStatusCode Status, string? Version, string? Label)>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = await host.Http.SendAsync(host.Classify(red));
                var body = response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync()) : null;
                seen.Enqueue((response.StatusCode, (string?)body?["modelVersion"], (string?)body?["label"]));
            }
        })).ToList();

        await host.Store.SetCurrentAsync("v2");
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} v2 published");
        await WaitForAsync(() => seen.Any(s => s.Version == "v2"), "answers from v2");
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} v2 answers");
        await host.Store.SetCurrentAsync("v1");
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} rolled back to v1");
        var rolledBack = seen.Count;
        await WaitForAsync(() => seen.Skip(rolledBack).Any(s => s.Version == "v1"), "answers from v1 after the rollback");
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} v1 answers");
        await Task.Delay(TimeSpan.FromSeconds(1));
        await stop.CancelAsync();
        await Task.WhenAll(clients);

        output.WriteLine($"{seen.Count} requests: {seen.Count(s => s.Version == "v1")} by v1, {seen.Count(s => s.Version == "v2")} by v2");
        Assert.All(seen, s => Assert.Equal(HttpStatusCode.OK, s.Status));
        // v2 has v1's weights with the labels reversed: red is "blue" there.
        Assert.All(seen, s => Assert.Equal(s.Version == "v2" ? "blue" : "red", s.Label));
        Assert.Contains(host.Log, l => l.Contains("Model version v2 is live (was v1)", StringComparison.Ordinal));
    }

    [HostFact]
    public async Task Sweep_ClassifiesWhatTheTriggerMissed_AndRemovesPredictionsOfDeletedImages()
    {
        await host.EnsureStartedAsync(model);
        var missed = host.Images.GetBlobClient("sweep/missed.png");
        var deleted = host.Images.GetBlobClient("sweep/deleted.png");
        await missed.UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("green", seed: 909)));
        await Task.Delay(TimeSpan.FromSeconds(1.1));
        await deleted.UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("red", seed: 910)));
        await WaitForPredictionAsync(host.Predictions, missed.Name);
        await WaitForPredictionAsync(host.Predictions, deleted.Name);
        // As if the trigger had missed one (a lost event): its prediction goes; the other's image goes.
        await host.Predictions.DeleteBlobAsync(missed.Name + ".json");
        await deleted.DeleteAsync();

        using var invoke = new HttpRequestMessage(HttpMethod.Post, host.Url("admin/functions/SweepUnclassifiedImages")) { Content = JsonContent.Create(new { input = "" }) };
        invoke.Headers.Add("x-functions-key", FunctionsHostFixture.MasterKey);
        Assert.Equal(HttpStatusCode.Accepted, (await host.Http.SendAsync(invoke)).StatusCode);

        var swept = await WaitForPredictionAsync(host.Predictions, missed.Name);
        Assert.Equal(("green", PredictionSource.Sweep), (swept.Label, swept.Source));
        await WaitForAsync(async () => !(await host.Predictions.GetBlobClient(deleted.Name + ".json").ExistsAsync()).Value);
    }

    [HostFact]
    public async Task HostLog_HasNoStorageRequestLines_AndTwoEntriesPerClassification()
    {
        await host.EnsureStartedAsync(model);
        // The model's graph went through the instance's local model cache, where a restarted worker finds it.
        Assert.Contains(host.Log, l => l.Contains("graph downloaded into the local model cache", StringComparison.Ordinal));
        Assert.NotEmpty(Directory.GetFiles(host.ModelCache, ColourModel.OnnxFileName, SearchOption.AllDirectories));
        var before = host.Log.Count;
        const int Requests = 20;
        for (var i = 0; i < Requests; i++)
        {
            using var response = await host.Http.SendAsync(host.Classify(ServingModelFixture.Image("red", seed: 911)));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
        await Task.Delay(TimeSpan.FromSeconds(1));
        var log = host.Log;
        // Entries, not lines: the host's console writes each entry as a "level: category[id]" line and a message line.
        var perRequest = (double)log.Skip(before).Count(IsEntry) / Requests;
        output.WriteLine($"cold start under the host: {host.ToFirstHealth.TotalSeconds:F1} s to /api/health, {host.ToFirstClassification.TotalSeconds:F1} s to the first classification");
        output.WriteLine($"host log: {host.StartupLogLines} lines at start-up, {log.Count} in all; {perRequest:F1} entries per classification");

        // The Azure SDK's per-request lines ("Request [id] GET ..." with every header) are filtered out, in the host and the worker.
        var storageLines = log.Where(l => l.Contains("Request [", StringComparison.Ordinal) || l.Contains("Response [", StringComparison.Ordinal)
            || l.Contains("x-ms-client-request-id", StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(storageLines.Count == 0, $"{storageLines.Count} storage request/response lines, e.g. {storageLines.FirstOrDefault()}");
        // The host's "Executing"/"Executed" pair per invocation, nothing more (MVC's per-answer line is filtered out).
        Assert.True(perRequest <= 2.5, $"{perRequest:F1} log entries per classification");
        // Warnings mean something: the host's and the worker's warnings so far, by category (Azure SDK 404s for what the app
        // or the deployment creates, or a poll of a queue that does not exist yet, would show here).
        var warnings = log.Select((l, i) => (l, i)).Where(p => p.l.StartsWith("warn:", StringComparison.Ordinal))
            .Select(p => p.l + (p.i + 1 < log.Count ? " " + log[p.i + 1].Trim() : "")).ToList();
        foreach (var group in warnings.GroupBy(w => w.Split('[')[0]))
        {
            output.WriteLine($"{group.Count()} x {group.Key}: {group.First()}");
        }
        // With what the deployment creates in place, no warning is about a missing queue or container.
        Assert.DoesNotContain(warnings, w => w.Contains("queue does not exist", StringComparison.Ordinal) || w.Contains("container does not exist", StringComparison.Ordinal));
        // The model's lifecycle is in the host's log although it happens outside any invocation.
        Assert.Contains(log, l => l.Contains("Model version v1 is live", StringComparison.Ordinal));
    }

    private static bool IsEntry(string line) =>
        line.StartsWith("info:", StringComparison.Ordinal) || line.StartsWith("warn:", StringComparison.Ordinal)
        || line.StartsWith("fail:", StringComparison.Ordinal) || line.StartsWith("crit:", StringComparison.Ordinal) || line.StartsWith("dbug:", StringComparison.Ordinal);

    /// <summary>
    /// <c>trainjob classify --container --distributed --wait</c>, run as a user runs it, against the app under the host:
    /// the host's queue trigger takes the shards. Predictions of deleted images are work only a shard does here (the
    /// blob trigger never sees them and the sweep is off), so their removal shows the queue function ran.
    /// </summary>
    [HostFact]
    public async Task DistributedClassify_TheHostsQueueFunctionFinishesTheJob()
    {
        await host.EnsureStartedAsync(model);
        const int Orphans = 24;
        for (var i = 0; i < Orphans; i++)
        {
            await host.Predictions.GetBlobClient($"fanout/gone-{i:D2}.png.json").UploadAsync(BinaryData.FromString("{}"));
        }
        for (var i = 0; i < 6; i++)
        {
            await host.Images.GetBlobClient($"fanout/{i}.png").UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image(ServingModelFixture.Labels[i % 3], seed: 950 + i)));
        }
        // A named model's image whose prediction is outdated (it names another image version): the job has it to do, and
        // the shard classifies it with that model, as the blob trigger does (the first path segment names the model).
        var named = $"{FunctionsHostFixture.SecondModel}/fanout.png";
        // The polling trigger scans by Last-Modified, which Azurite keeps to the second: a blob written in the second of a
        // scan that has just passed is not seen by the next one (this wait failed once in CI without the pause).
        await Task.Delay(TimeSpan.FromSeconds(1.1));
        await host.Images.GetBlobClient(named).UploadAsync(BinaryData.FromBytes(ServingModelFixture.Image("red", seed: 960)), overwrite: true);
        await WaitForPredictionAsync(host.Predictions, named);
        await host.Predictions.GetBlobClient(named + ".json").SetMetadataAsync(new Dictionary<string, string> { [PredictionBlobs.ImageVersionMetadata] = "0x0" });
        var trainJob = Path.Combine(TestAssets.RepositoryRoot, "src", "TrainJob", "bin",
            System.Reflection.CustomAttributeExtensions.GetCustomAttribute<System.Reflection.AssemblyConfigurationAttribute>(typeof(EndToEndTests).Assembly)!.Configuration, "net10.0", "ServerlessClassifier.TrainJob.dll");
        Assert.True(File.Exists(trainJob), $"{trainJob} is built with the solution (scripts/test.sh builds it).");
        var start = new ProcessStartInfo("dotnet", [trainJob, "classify", "--container", host.Images.Name, "--distributed", "--shard-size", "5", "--wait"])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["ClassifierStorage"] = TestStorage.ConnectionString;
        start.Environment["Classifier__PredictionsContainer"] = host.Predictions.Name;
        start.Environment["Classifier__ModelsContainer"] = host.ModelsContainer;
        start.Environment["Classifier__JobsContainer"] = host.Jobs.Name;
        start.Environment["Classifier__ShardQueue"] = host.ShardQueue;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        await process.WaitForExitAsync(timeout.Token);
        var printed = await stdout + await stderr;
        output.WriteLine(printed);

        Assert.True(process.ExitCode == 0, printed);
        Assert.Contains(": finished.", printed, StringComparison.Ordinal);
        Assert.Matches(@"Shards: (\d+) of \1 done, 0 parked, 0 waiting or running\.", printed);
        var removed = int.Parse(Regex.Match(printed, @"(\d+) predictions of deleted images removed").Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.True(removed >= Orphans, printed);
        Assert.Equal(0, await CountAsync(host.Predictions, "fanout/gone-", Enumerable.Range(0, Orphans).Select(i => $"fanout/gone-{i:D2}.png.json")));
        for (var i = 0; i < 6; i++)
        {
            Assert.Equal(PredictionStatus.Ok, (await WaitForPredictionAsync(host.Predictions, $"fanout/{i}.png")).Status);
        }
        Assert.Contains(host.Log, line => line.Contains("Executed 'Functions.ClassifyShard' (Succeeded", StringComparison.Ordinal));
        var shard = await WaitForPredictionAsync(host.Predictions, named, p => p.Source == PredictionSource.Shard);
        Assert.Equal(FunctionsHostFixture.SecondModel, shard.Model);
        Assert.StartsWith("s", shard.ModelVersion, StringComparison.Ordinal); // s1 or s2: the second model's, whichever is live
    }

    private static async Task<PredictionDocument> WaitForPredictionAsync(BlobContainerClient predictions, string image, Func<PredictionDocument, bool>? until = null)
    {
        PredictionDocument? found = null;
        await WaitForAsync(async () =>
        {
            var blob = predictions.GetBlobClient(image + ".json");
            if (!(await blob.ExistsAsync()).Value)
            {
                return false;
            }
            found = PredictionDocument.Parse((await blob.DownloadContentAsync()).Value.Content.ToMemory().Span);
            return until?.Invoke(found) ?? true;
        }, $"a prediction for {image}");
        return found!;
    }

    private static async Task<int> CountAsync(BlobContainerClient container, string prefix, IEnumerable<string> names)
    {
        var wanted = names.ToHashSet(StringComparer.Ordinal);
        var count = 0;
        await foreach (var blob in container.GetBlobsAsync(new Azure.Storage.Blobs.Models.GetBlobsOptions { Prefix = prefix }))
        {
            count += wanted.Contains(blob.Name) ? 1 : 0;
        }
        return count;
    }

    private static Task WaitForAsync(Func<bool> condition, string what = "the condition") => WaitForAsync(() => Task.FromResult(condition()), what);

    private static async Task WaitForAsync(Func<Task<bool>> condition, string what = "the condition")
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (!await condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(250);
        }
    }
}
