using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Infrastructure;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions;
using ServerlessClassifier.Functions.Functions;

// Usage: ServerlessClassifier.LocalDemo <holdout folder> <images per class> [--host in-process|func]
//   Uploads images (2 per class by default) to the images container, gets each one classified by the
//   blob-trigger function, prints the prediction blobs it wrote, then answers one HTTP classification.
//   in-process: the Functions app's own function classes through its own DI registrations (what the
//   host would run); func: a running `func start` host (its blob trigger, and HTTP on localhost:7071).
if (args.Length < 2 || !Directory.Exists(args[0]) || !int.TryParse(args[1], CultureInfo.InvariantCulture, out var perClass) || perClass < 1)
{
    Console.Error.WriteLine("usage: ServerlessClassifier.LocalDemo <holdout folder> <images per class> [--host in-process|func]");
    return 2;
}
var useFunc = args.SkipWhile(a => a != "--host").Skip(1).FirstOrDefault() == "func";
var configuration = new ConfigurationBuilder().AddEnvironmentVariables().Build();
var services = new ServiceCollection()
    .AddSingleton<IConfiguration>(configuration)
    .AddLogging(logging => logging.AddSimpleConsole(o => o.SingleLine = true).SetMinimumLevel(LogLevel.Warning));
services.AddClassifierServices();
await using var provider = services.BuildServiceProvider();
var blobs = provider.GetRequiredService<BlobServiceClient>();
var images = blobs.GetBlobContainerClient(configuration["Classifier:ImagesContainer"] ?? "images");
var predictions = blobs.GetBlobContainerClient(configuration["Classifier:PredictionsContainer"] ?? "predictions");
await images.CreateIfNotExistsAsync();
await predictions.CreateIfNotExistsAsync();

// 1. Upload: <label>_<file> so the true label shows next to the prediction.
var samples = Directory.GetDirectories(args[0]).Order(StringComparer.Ordinal)
    .SelectMany(dir => Directory.GetFiles(dir).Order(StringComparer.Ordinal).Take(perClass).Select(f => (Label: Path.GetFileName(dir), File: f)))
    .ToList();
var run = DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture);
var uploaded = new List<(string Name, string Label)>();
foreach (var (label, file) in samples)
{
    var name = $"demo-{run}/{label}_{Path.GetFileName(file)}";
    await images.GetBlobClient(name).UploadAsync(BinaryData.FromBytes(await File.ReadAllBytesAsync(file)), overwrite: true);
    uploaded.Add((name, label));
}
Console.WriteLine($"Uploaded {uploaded.Count} images to the '{images.Name}' container.");

// 2. Classify through the blob trigger.
var clock = Stopwatch.StartNew();
if (useFunc)
{
    Console.WriteLine("Waiting for the Functions host's blob trigger to write the predictions (polling source; can take a minute)...");
    while (clock.Elapsed < TimeSpan.FromMinutes(5))
    {
        var done = 0;
        foreach (var (name, _) in uploaded)
        {
            done += await predictions.GetBlobClient($"{name}.json").ExistsAsync() ? 1 : 0;
        }
        if (done == uploaded.Count)
        {
            break;
        }
        await Task.Delay(2000);
    }
}
else
{
    Console.WriteLine("Azure Functions Core Tools (func) are not installed: running the blob-trigger function class in-process, as the host would.");
    var trigger = ActivatorUtilities.CreateInstance<ClassifyUploadedImage>(provider);
    foreach (var (name, _) in uploaded)
    {
        await trigger.Run(images.GetBlobClient(name), name, CancellationToken.None);
    }
}

// 3. Show what the trigger wrote.
Console.WriteLine();
Console.WriteLine($"{"image",-48} {"true",-8} {"predicted",-10} {"confidence",10}  status");
var correct = 0;
foreach (var (name, label) in uploaded)
{
    var blob = predictions.GetBlobClient($"{name}.json");
    if (!await blob.ExistsAsync())
    {
        Console.WriteLine($"{name,-48} {label,-8} (no prediction yet)");
        continue;
    }
    using var document = JsonDocument.Parse((await blob.DownloadContentAsync()).Value.Content.ToMemory());
    var root = document.RootElement;
    var predicted = root.TryGetProperty("label", out var l) ? l.GetString() : "-";
    var confidence = root.TryGetProperty("confidence", out var c) ? c.GetDouble() : 0;
    correct += predicted == label ? 1 : 0;
    Console.WriteLine($"{name,-48} {label,-8} {predicted,-10} {confidence,10:P1}  {root.GetProperty("status").GetString()}");
}
Console.WriteLine($"{correct}/{uploaded.Count} uploads classified correctly; prediction blobs are in the '{predictions.Name}' container (<image name>.json).");

// 4. One HTTP classification (in-process; with func, the demo script also calls it with curl).
var sample = samples[^1];
var context = new DefaultHttpContext();
context.Request.Method = "POST";
context.Request.ContentType = "image/png";
var body = await File.ReadAllBytesAsync(sample.File);
context.Request.Body = new MemoryStream(body);
context.Request.ContentLength = body.Length;
context.Request.QueryString = new QueryString("?top=3");
var http = ActivatorUtilities.CreateInstance<ClassifyImage>(provider);
var response = await http.Run(context.Request, CancellationToken.None);
var status = (response as IStatusCodeActionResult)?.StatusCode ?? 0;
var value = (response as ObjectResult)?.Value;
Console.WriteLine();
Console.WriteLine($"POST /api/classify?top=3 with {sample.Label}/{Path.GetFileName(sample.File)} -> HTTP {status}");
Console.WriteLine(JsonSerializer.Serialize(value, new JsonSerializerOptions(JsonSerializerDefaults.Web) { WriteIndented = true }));
return correct > 0 && status == 200 ? 0 : 1;
