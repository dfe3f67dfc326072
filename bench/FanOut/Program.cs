using System.Diagnostics;
using System.Globalization;
using System.Text;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Bench;
using ServerlessClassifier.Functions;
using ServerlessClassifier.Functions.Functions;
using ServerlessClassifier.ModelCore.Jobs;
using ServerlessClassifier.ModelCore.Runtime;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.Tests.Common;

// The fan-out benchmark: one image set, one published model, and a fanned-out classification of the whole set run
// again for 1, 2 and 4 consumers. A consumer is what one Functions instance is: its own service provider (its own
// model, ONNX Runtime session and micro-batcher) running the real ClassifyShard over the real Azurite queue, with one
// ONNX Runtime thread (one core per instance, an assumption). Images/s is items / wall time from the
// first message to the last shard's result, each run from a fresh predictions container.
// Usage: dotnet run -c Release --project bench/FanOut [-- --images 1200] [--output docs/benchmarks-fanout.md]
var storage = Environment.GetEnvironmentVariable("ClassifierStorage")
    ?? throw new InvalidOperationException("Set ClassifierStorage (scripts/bench-fanout.sh starts Azurite and sets it).");
var repository = BenchEnvironment.RepositoryRoot();
var imageCount = int.Parse(args.SkipWhile(a => a != "--images").Skip(1).FirstOrDefault() ?? "1200", CultureInfo.InvariantCulture);
var output = args.SkipWhile(a => a != "--output").Skip(1).FirstOrDefault() ?? Path.Combine(repository, "docs", "benchmarks-fanout.md");
int[] consumerCounts = [1, 2, 4];
const int ShardSize = 50;
TorchRuntime.EnsureInitialized();
var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
Console.WriteLine($"Fan-out benchmark: {imageCount} images, shards of {ShardSize}, consumers {string.Join(", ", consumerCounts)}. {BenchEnvironment.Describe()}; CPU flags: {BenchEnvironment.CpuFlags()}");

// Real images: Twitter emoji of every category (about 2,000 with 250 per class); 20 per class train the model.
var emoji = Path.Combine(Path.GetTempPath(), $"bench-fanout-emoji-{Guid.NewGuid():N}");
using (var node = Process.Start("node", [Path.Combine(repository, "scripts", "emoji-dataset.mjs"), emoji, "--all", "--per-class", "250"]))
{
    await node.WaitForExitAsync();
}
var files = Directory.GetFiles(emoji, "*.png", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToList();
var trainingRoot = Path.Combine(Path.GetTempPath(), $"bench-fanout-train-{Guid.NewGuid():N}");
foreach (var group in files.GroupBy(f => Path.GetFileName(Path.GetDirectoryName(f)!)))
{
    Directory.CreateDirectory(Path.Combine(trainingRoot, group.Key));
    foreach (var file in group.Take(20))
    {
        File.Copy(file, Path.Combine(trainingRoot, group.Key, Path.GetFileName(file)), overwrite: true);
    }
}
using var models = await ServingModels.TrainAsync(trainingRoot);
Directory.Delete(trainingRoot, recursive: true);

var account = new BlobServiceClient(storage);
var suffix = Guid.NewGuid().ToString("N")[..10];
var images = account.GetBlobContainerClient($"fanout-images-{suffix}");
var modelContainer = account.GetBlobContainerClient($"fanout-models-{suffix}");
await images.CreateAsync();
await modelContainer.CreateAsync();
// The int8 graph: what train's default --precision auto serves when its check passes (it passed: ServingModels checks).
await new ModelStore(modelContainer).PublishAsync(models.Int8Folder, version: "bench");
var uploads = files.Take(imageCount).ToList();
await Parallel.ForEachAsync(uploads.Select((file, i) => (file, i)), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (item, token) =>
    await images.UploadBlobAsync($"photos/{item.i:D5}.png", BinaryData.FromBytes(await File.ReadAllBytesAsync(item.file, token)), token));
Directory.Delete(emoji, recursive: true);

var rows = new List<(int Consumers, long Items, int Shards, double Seconds, int Deliveries)>();
foreach (var consumers in consumerCounts)
{
    var run = $"{suffix}-{consumers}";
    var predictions = account.GetBlobContainerClient($"fanout-predictions-{run}");
    var jobs = new JobStore(account.GetBlobContainerClient($"fanout-jobs-{run}"));
    var queue = new QueueClient(storage, $"fanout-shards-{run}", new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 });
    var providers = Enumerable.Range(0, consumers).Select(_ => Consumer(storage, images.Name, predictions.Name, modelContainer.Name, jobs.Container.Name, queue.Name)).ToList();
    // Each consumer loads the model before the clock starts (an instance that is already warm).
    foreach (var provider in providers)
    {
        using var lease = await provider.GetRequiredService<ServerlessClassifier.Functions.Services.ModelProvider>().AcquireAsync(CancellationToken.None);
    }
    var job = await new ShardPlanner(images, predictions, jobs, queue).StartAsync(ShardSize);
    var clock = Stopwatch.StartNew();
    var deliveries = await Task.WhenAll(providers.Select(provider =>
        QueueConsumer.RunAsync(queue, ActivatorUtilities.CreateInstance<ClassifyShard>(provider).Run, jobs, job.Id, TimeSpan.FromMinutes(30))));
    clock.Stop();
    var status = (await jobs.GetStatusAsync(job.Id))!;
    if (status.ShardsDone != job.Shards || status.Totals.Items != job.Items)
    {
        throw new InvalidOperationException($"The job did not finish cleanly: {status.ShardsDone} of {job.Shards} shards, {status.Parked.Count} parked.");
    }
    rows.Add((consumers, job.Items, job.Shards, clock.Elapsed.TotalSeconds, deliveries.Sum()));
    Console.WriteLine($"{consumers} consumer(s): {job.Items} images in {clock.Elapsed.TotalSeconds:F1} s = {job.Items / clock.Elapsed.TotalSeconds:F1} images/s");
    foreach (var provider in providers)
    {
        await provider.DisposeAsync();
    }
    await predictions.DeleteIfExistsAsync();
    await jobs.Container.DeleteIfExistsAsync();
    await queue.DeleteIfExistsAsync();
}
await images.DeleteIfExistsAsync();
await modelContainer.DeleteIfExistsAsync();

var loadAfter = File.ReadAllText("/proc/loadavg").Trim();
var baseline = rows[0].Items / rows[0].Seconds;
var document = new StringBuilder();
document.AppendLine("# Fan-out benchmark");
document.AppendLine();
document.AppendLine(CultureInfo.InvariantCulture, $"Written by `bash scripts/bench-fanout.sh` on {DateTime.UtcNow:yyyy-MM-dd} UTC. {BenchEnvironment.Describe()}; CPU flags: {BenchEnvironment.CpuFlags()}.");
document.AppendLine(CultureInfo.InvariantCulture, $"Load average before: {loadBefore}; after: {loadAfter}.");
document.AppendLine();
document.AppendLine(CultureInfo.InvariantCulture, $"`trainjob classify --container --distributed` over {imageCount} emoji PNGs (64 px) in shards of {ShardSize}, classified by the default");
document.AppendLine("ResNet-18 head-mode model (int8 graph) through the real `ClassifyShard` function and a real Azurite queue. Each consumer stands for one");
document.AppendLine("Functions instance: its own service provider, model and ONNX Runtime session with one intra-op thread (one core per instance");
document.AppendLine("is an assumption: this repository does not know the cores of a Flex Consumption instance size). Wall time runs from the first message to the last shard's result; the model was loaded before.");
document.AppendLine();
document.AppendLine("| consumers | images | shards | deliveries | seconds | images/s | vs 1 consumer |");
document.AppendLine("|---:|---:|---:|---:|---:|---:|---:|");
foreach (var row in rows)
{
    var rate = row.Items / row.Seconds;
    document.AppendLine(CultureInfo.InvariantCulture, $"| {row.Consumers} | {row.Items} | {row.Shards} | {row.Deliveries} | {row.Seconds:F1} | {rate:F1} | {rate / baseline:F2}x |");
}
document.AppendLine();
document.AppendLine(CultureInfo.InvariantCulture, $"This machine has {Environment.ProcessorCount} cores and runs Azurite on the same cores, so the consumers beyond {Environment.ProcessorCount} share them:");
document.AppendLine("the figure past that point measures the queue's and storage's overhead, not scale-out. In Azure each consumer is an instance of its own.");
Directory.CreateDirectory(Path.GetDirectoryName(output)!);
File.WriteAllText(output, document.ToString());
Console.WriteLine(document);
Console.WriteLine($"Wrote {output}");
return 0;

static ServiceProvider Consumer(string storage, string images, string predictions, string models, string jobs, string queue)
{
    var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
    {
        ["ClassifierStorage"] = storage,
        ["Classifier:ImagesContainer"] = images,
        ["Classifier:PredictionsContainer"] = predictions,
        ["Classifier:ModelsContainer"] = models,
        ["Classifier:JobsContainer"] = jobs,
        ["Classifier:ShardQueue"] = queue,
        ["Classifier:IntraOpThreads"] = "1",
        // The review queue is off: it is the same for every run and not what this measures.
        ["Classifier:ReviewMaxPerDay"] = "0",
    }).Build();
    var services = new ServiceCollection().AddSingleton<IConfiguration>(configuration).AddLogging(b => b.SetMinimumLevel(LogLevel.Warning));
    services.AddClassifierServices();
    return services.BuildServiceProvider();
}
