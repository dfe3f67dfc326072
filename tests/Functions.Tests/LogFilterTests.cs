using System.Text.Json.Nodes;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests;

/// <summary>The Azure SDK's per-request logs are kept to warnings, in the worker and in the host.</summary>
public sealed class LogFilterTests
{
    [Fact]
    public void Worker_KeepsAzureSdkWarningsOnly_AndTheAppsInformation()
    {
        using var services = new ServiceCollection()
            .AddLogging(logging => logging.SetMinimumLevel(LogLevel.Information).AddClassifierLogFilters().AddProvider(new CapturingLoggerProvider()))
            .BuildServiceProvider();
        var factory = services.GetRequiredService<ILoggerFactory>();

        Assert.False(factory.CreateLogger("Azure.Core").IsEnabled(LogLevel.Information));
        Assert.False(factory.CreateLogger("Azure.Storage.Blobs").IsEnabled(LogLevel.Information));
        Assert.True(factory.CreateLogger("Azure.Core").IsEnabled(LogLevel.Warning));
        Assert.True(factory.CreateLogger("ServerlessClassifier.Functions.Services.ModelProvider").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public void HostJson_KeepsAzureSdkWarningsOnly()
    {
        var levels = JsonNode.Parse(File.ReadAllText(Path.Combine(TestAssets.RepositoryRoot, "host.json")))!["logging"]!["logLevel"]!;
        Assert.Equal("Warning", (string?)levels[ClassifierLogging.AzureSdkCategory]);
        Assert.Equal("Information", (string?)levels["default"]);
    }
}
