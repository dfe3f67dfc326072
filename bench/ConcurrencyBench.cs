using System.Diagnostics;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Functions;
using ServerlessClassifier.Functions.Services;

namespace ServerlessClassifier.Bench;

/// <summary>
/// Concurrent throughput of the Functions app's classification service (model provider, micro-batcher,
/// serving pipeline, through its own DI registrations) with 1, 4 and 16 callers, micro-batching on and off.
/// </summary>
internal static class ConcurrencyBench
{
    public static async Task<double> ImagesPerSecondAsync(string connectionString, string modelsContainer, bool microBatching, int callers, int imagesPerCaller, byte[] image, int maxWaitMilliseconds = 5)
    {
        var configuration = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ClassifierStorage"] = connectionString,
            ["Classifier:ModelsContainer"] = modelsContainer,
            ["Classifier:MicroBatching:Enabled"] = microBatching ? "true" : "false",
            ["Classifier:MicroBatching:MaxWaitMilliseconds"] = maxWaitMilliseconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }).Build();
        var services = new ServiceCollection()
            .AddSingleton<IConfiguration>(configuration)
            .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Warning));
        services.AddClassifierServices();
        await using var provider = services.BuildServiceProvider();
        var classifier = provider.GetRequiredService<ClassificationService>();
        await classifier.ClassifyAsync(image, 1, null, CancellationToken.None); // load the model, warm up

        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, callers).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < imagesPerCaller; i++)
            {
                await classifier.ClassifyAsync(image, 5, null, CancellationToken.None);
            }
        })));
        return callers * imagesPerCaller / clock.Elapsed.TotalSeconds;
    }
}
