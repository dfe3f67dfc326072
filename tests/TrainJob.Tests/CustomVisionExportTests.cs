using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Azure.Storage.Sas;
using ServerlessClassifier.ModelCore.Checkpoints;
using ServerlessClassifier.Tests.Common;
using ServerlessClassifier.TrainJob.Cli;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>
/// scripts/export-customvision.sh against recorded Custom Vision Training API responses
/// (tests/fixtures/customvision, shaped after the published v3.3 reference; not the live service) served
/// by a local stand-in, uploading to Azurite; then <c>train --data</c> on the manifest it wrote.
/// </summary>
[Collection(TorchTests.Collection)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class CustomVisionExportTests : IDisposable
{
    private const string Key = "recorded-training-key";
    private const string Project = "bc3f7dad-5544-468c-8573-3ef04d55463e";
    private static readonly string Fixtures = Path.Combine(TestAssets.RepositoryRoot, "tests", "fixtures", "customvision");
    private readonly TempFolder temp = new();
    private readonly List<string> requests = [];

    [Fact]
    public async Task Export_PagesTaggedImages_UploadsThem_WritesAManifestThatTrains()
    {
        var cli = new Cli();
        var container = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.TrainingContainer);
        await container.CreateAsync();
        var sas = container.GenerateSasUri(BlobContainerSasPermissions.Create | BlobContainerSasPermissions.Write, DateTimeOffset.UtcNow.AddHours(1));
        using var service = new RecordedCustomVision(requests);
        var manifest = temp.Combine("customvision.csv");

        var (exitCode, output) = await RunAsync(
            "--endpoint", service.Url, "--project", Project, "--container-url", sas.ToString(), "--prefix", "cv", "--manifest", manifest, "--page-size", "3");

        Assert.True(exitCode == 0, output);
        Assert.Contains("Custom Vision project Fruit (Multiclass)", output, StringComparison.Ordinal);
        Assert.Contains("Exported 6 image(s)", output, StringComparison.Ordinal);
        Assert.Contains("left out image 9f0ad4b2-3c1e-4c44-8d36-000000000006: it has 2 tags", output, StringComparison.Ordinal);
        Assert.DoesNotContain(Key, output, StringComparison.Ordinal);
        Assert.DoesNotContain("sig=", output, StringComparison.Ordinal);
        Assert.Contains("/images/tagged?take=3&skip=0", requests);
        Assert.Contains("/images/tagged?take=3&skip=6", requests); // pages until a short page
        var rows = await File.ReadAllLinesAsync(manifest);
        Assert.Equal("image,label", rows[0]);
        Assert.Equal(6, rows.Length - 1);
        Assert.Contains("cv/9f0ad4b2-3c1e-4c44-8d36-000000000001,banana", rows);
        var blobs = new List<string>();
        await foreach (var blob in container.GetBlobsAsync())
        {
            blobs.Add(blob.Name);
        }
        Assert.Equal(rows.Skip(1).Select(r => r.Split(',')[0]).Order(StringComparer.Ordinal), blobs.Order(StringComparer.Ordinal));
        Assert.Equal(RecordedCustomVision.Png(1), (await container.GetBlobClient("cv/9f0ad4b2-3c1e-4c44-8d36-000000000001").DownloadContentAsync()).Value.Content.ToArray());

        var train = await cli.RunAsync("train", "--data", manifest, "--output", temp.Combine("model"), "--mode", "head", "--device", "cpu");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        var trained = (await ModelPackage.LoadAsync(temp.Combine("model"))).Manifest;
        Assert.Equal(["apple", "banana"], trained.Labels);
        // The project's tag ids (tags.json of the recording), saved beside the manifest and recorded in the model.
        Assert.True(File.Exists(temp.Combine("customvision.tags.json")));
        Assert.Equal(new Dictionary<string, Guid>
        {
            ["apple"] = Guid.Parse("b5f7e6a2-a481-49a6-afec-a7cef1af3544"),
            ["banana"] = Guid.Parse("45619cda-d1c9-4bc8-a3e1-87c5d81adbc3"),
        }, trained.CustomVisionTagIds);
    }

    [Fact]
    public async Task Export_OfAMultilabelProject_WritesEveryTagOfAnImage_AndTheManifestTrainsAMultiLabelModel()
    {
        var cli = new Cli();
        var container = TestStorage.CreateServiceClient().GetBlobContainerClient(cli.TrainingContainer);
        await container.CreateAsync();
        var sas = container.GenerateSasUri(BlobContainerSasPermissions.Create | BlobContainerSasPermissions.Write, DateTimeOffset.UtcNow.AddHours(1));
        using var service = new RecordedCustomVision(requests, multilabel: true);
        var manifest = temp.Combine("customvision.csv");

        var (exitCode, output) = await RunAsync("--endpoint", service.Url, "--project", Project, "--container-url", sas.ToString(), "--prefix", "cv", "--manifest", manifest);

        Assert.True(exitCode == 0, output);
        Assert.Contains("Custom Vision project Fruit (Multilabel)", output, StringComparison.Ordinal);
        Assert.Contains("Exported 7 image(s)", output, StringComparison.Ordinal);
        Assert.Contains("--multilabel", output, StringComparison.Ordinal);
        var rows = await File.ReadAllLinesAsync(manifest);
        Assert.Equal("image,labels", rows[0]);
        Assert.Equal(7, rows.Length - 1);
        Assert.Contains("cv/9f0ad4b2-3c1e-4c44-8d36-000000000006,apple;banana", rows);
        Assert.Contains("cv/9f0ad4b2-3c1e-4c44-8d36-000000000001,banana", rows);

        var train = await cli.RunAsync("train", "--data", manifest, "--multilabel", "--output", temp.Combine("model"), "--mode", "head", "--device", "cpu");

        Assert.True(train.ExitCode == ExitCodes.Ok, train.All);
        var trained = (await ModelPackage.LoadAsync(temp.Combine("model"))).Manifest;
        Assert.Equal(ModelKind.MultiLabel, trained.Kind);
        Assert.Equal(["apple", "banana"], trained.Labels);
        Assert.Equal(2, trained.LabelThresholds!.Count);
    }

    [Fact]
    public async Task Export_RefusesAContainerUrlWithoutSas_AndAMissingKey()
    {
        var (noSas, noSasOutput) = await RunAsync("--endpoint", "http://127.0.0.1:9", "--project", Project, "--container-url", "https://a.blob.core.windows.net/training");
        var (noKey, noKeyOutput) = await RunAsync(new Dictionary<string, string> { ["CUSTOMVISION_TRAINING_KEY"] = "" },
            "--endpoint", "http://127.0.0.1:9", "--project", Project, "--container-url", "https://a.blob.core.windows.net/training?sv=x");

        Assert.Equal(2, noSas);
        Assert.Contains("needs a SAS token", noSasOutput, StringComparison.Ordinal);
        Assert.Equal(2, noKey);
        Assert.Contains("CUSTOMVISION_TRAINING_KEY", noKeyOutput, StringComparison.Ordinal);
    }

    public void Dispose() => temp.Dispose();

    private Task<(int ExitCode, string Output)> RunAsync(params string[] arguments) => RunAsync(new Dictionary<string, string>(), arguments);

    private async Task<(int ExitCode, string Output)> RunAsync(Dictionary<string, string> environment, params string[] arguments)
    {
        var start = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = temp.Path };
        start.ArgumentList.Add(Path.Combine(TestAssets.RepositoryRoot, "scripts", "export-customvision.sh"));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["CUSTOMVISION_TRAINING_KEY"] = Key;
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        return (process.ExitCode, await stdout + await stderr);
    }

    /// <summary>
    /// Serves the recorded answers: the project, its tags, the tagged images paged by take/skip (as the
    /// service does) with the Training-Key checked, and the image downloads (one flat colour per tag).
    /// </summary>
    private sealed class RecordedCustomVision : IDisposable
    {
        private readonly HttpListener listener = new();
        private readonly List<string> requests;
        private readonly Task loop;

        private readonly bool multilabel;

        /// <param name="multilabel">Answer as a Multilabel project (the recorded project's classification type changed).</param>
        public RecordedCustomVision(List<string> requests, bool multilabel = false)
        {
            this.requests = requests;
            this.multilabel = multilabel;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                Url = $"http://127.0.0.1:{((IPEndPoint)probe.LocalEndpoint).Port}";
                probe.Stop();
            }
            listener.Prefixes.Add(Url + "/");
            listener.Start();
            loop = Task.Run(ServeAsync);
        }

        public string Url { get; }

        public static byte[] Png(int index)
        {
            using var image = new Image<Rgb24>(32, 32, index % 2 == 0 ? new Rgb24(200, 40, 40) : new Rgb24(230, 210, 40));
            image[index, index] = new Rgb24(0, 0, 0);
            using var stream = new MemoryStream();
            image.SaveAsPng(stream);
            return stream.ToArray();
        }

        public void Dispose()
        {
            listener.Stop();
            listener.Close();
            try
            {
                loop.Wait(TimeSpan.FromSeconds(5));
            }
            catch (AggregateException)
            {
            }
        }

        private async Task ServeAsync()
        {
            while (listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
                {
                    return;
                }
                var path = context.Request.Url!.AbsolutePath;
                var api = $"/customvision/v3.3/training/projects/{Project}";
                byte[] body;
                var status = 200;
                if (path.StartsWith(api, StringComparison.Ordinal))
                {
                    var rest = path[api.Length..];
                    lock (requests)
                    {
                        requests.Add(rest + context.Request.Url.Query);
                    }
                    if (context.Request.Headers["Training-Key"] != Key)
                    {
                        (status, body) = (401, """{"code":"Unauthorized","message":"Access denied due to invalid subscription key."}"""u8.ToArray());
                    }
                    else
                    {
                        body = rest switch
                        {
                            "" => multilabel ? System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(Recorded("project.json")).Replace("\"Multiclass\"", "\"Multilabel\"", StringComparison.Ordinal)) : Recorded("project.json"),
                            "/tags" => Recorded("tags.json"),
                            "/images/tagged" => Page(context.Request.QueryString),
                            _ => [],
                        };
                        status = body.Length == 0 ? 404 : 200;
                    }
                    context.Response.ContentType = "application/json";
                }
                else if (path.Contains("/o-9f0ad4b2-3c1e-4c44-8d36-", StringComparison.Ordinal))
                {
                    body = Png(int.Parse(path[^12..], System.Globalization.CultureInfo.InvariantCulture));
                    context.Response.ContentType = "image/png";
                }
                else
                {
                    (status, body) = (404, []);
                }
                context.Response.StatusCode = status;
                await context.Response.OutputStream.WriteAsync(body);
                context.Response.Close();
            }
        }

        private byte[] Recorded(string file) => System.Text.Encoding.UTF8.GetBytes(File.ReadAllText(Path.Combine(Fixtures, file)).Replace("{images}", Url, StringComparison.Ordinal));

        private byte[] Page(System.Collections.Specialized.NameValueCollection query)
        {
            var all = System.Text.Json.Nodes.JsonNode.Parse(Recorded("tagged-images.json"))!.AsArray();
            var skip = int.Parse(query["skip"] ?? "0", System.Globalization.CultureInfo.InvariantCulture);
            var take = int.Parse(query["take"] ?? "50", System.Globalization.CultureInfo.InvariantCulture);
            var page = new System.Text.Json.Nodes.JsonArray([.. all.Skip(skip).Take(take).Select(n => n!.DeepClone())]);
            return System.Text.Encoding.UTF8.GetBytes(page.ToJsonString());
        }
    }
}
