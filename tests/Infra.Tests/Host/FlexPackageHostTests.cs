using System.Net;
using System.Text.Json.Nodes;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Infra.Tests.Host;

/// <summary>
/// The Flex Consumption package under the real Functions host, told it runs on Flex Consumption
/// (<c>WEBSITE_SKU=FlexConsumption</c>), against the test Azurite (<c>CLASSIFIER_TEST_STORAGE</c>) in place of the
/// identity-based storage settings. One publish for the class; one host start per test.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class FlexPackageHostTests(FlexPackage package, CompiledTemplateFixture compiled)
    : IClassFixture<FlexPackage>, IClassFixture<CompiledTemplateFixture>
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromMinutes(2);

    [Fact]
    public void Package_HasNoPollingBlobTrigger()
    {
        var names = JsonNode.Parse(File.ReadAllText(Path.Combine(package.Directory, "functions.metadata")))!.AsArray()
            .Select(function => (string?)function!["name"]).Order(StringComparer.Ordinal);

        Assert.Equal(["ClassifyImage", "ClassifyShard", "ClassifyUploadedImageEventGrid", "ClassifyWithModel", "CustomVisionClassify", "DecideLabel", "GetModel", "Health", "LabelReview", "ListModels", "ListReview", "ListStagedLabels", "ReviewThumbnail", "SweepUnclassifiedImages", "WebPage"], names);
    }

    [Fact]
    public void Package_CarriesLinuxX64NativesOnly()
    {
        // Flex Consumption runs Linux x64: natives of other platforms (ONNX Runtime and SkiaSharp ship about a dozen)
        // only make the package to upload and to unpack on every cold start bigger.
        var sep = Path.DirectorySeparatorChar;
        var natives = System.IO.Directory.EnumerateFiles(package.Directory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(package.Directory, f))
            .Where(f => f.Contains($"{sep}native{sep}", StringComparison.Ordinal) || f.EndsWith(".so", StringComparison.Ordinal) || f.EndsWith(".dylib", StringComparison.Ordinal))
            .ToList();

        Assert.Contains(natives, f => Path.GetFileName(f) == "libonnxruntime.so");
        Assert.All(natives, f => Assert.True(f.EndsWith(".so", StringComparison.Ordinal) && !f.Contains($"runtimes{sep}", StringComparison.Ordinal), f));
    }

    [HostFact]
    public async Task OnlyStorageSettings_TheAppStopsNamingTheMissingSettings()
    {
        using var host = FunctionsHost.Start(package.Directory, StorageSettings());

        var stopped = await host.WaitForOutputAsync("cannot start. Missing required app setting(s): Classifier__ImagesContainer", StartTimeout);

        Assert.True(stopped, "no startup message naming the missing settings; host output:\n" + host.Output);
        Assert.Contains("Classifier__SweepSchedule", host.Output, StringComparison.Ordinal);
        Assert.NotEqual(HttpStatusCode.OK, await host.HealthAsync());
    }

    [HostFact]
    public async Task TheTemplatesAppSettings_IndexEveryFunctionAndAnswerHealth()
    {
        var settings = new Dictionary<string, string>(StorageSettings());
        foreach (var (key, value) in ClassifierSettingsFromTemplate())
        {
            settings[key] = value;
        }
        using var host = FunctionsHost.Start(package.Directory, settings);

        var started = await host.WaitForOutputAsync("Host started", StartTimeout);

        Assert.True(started, "the host did not start; output:\n" + host.Output);
        var healthy = false;
        for (var attempt = 0; attempt < 60 && !healthy; attempt++)
        {
            healthy = await host.HealthAsync() == HttpStatusCode.OK;
            if (!healthy)
            {
                await Task.Delay(500);
            }
        }
        Assert.True(healthy, "GET /api/health did not answer 200; output:\n" + host.Output);
        foreach (var name in new[] { "ClassifyImage", "ClassifyShard", "ClassifyUploadedImageEventGrid", "DecideLabel", "GetModel", "Health", "LabelReview", "ListReview", "ListStagedLabels", "ReviewThumbnail", "SweepUnclassifiedImages", "WebPage" })
        {
            Assert.Contains($"Host.Functions.{name}", host.Output, StringComparison.Ordinal);
        }
        Assert.DoesNotContain("failed indexing", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("cannot start", host.Output, StringComparison.Ordinal);

        // The deployment scripts against this host, with a stand-in `az` (StandInAzureCli) for what needs Azure.
        using var az = new StandInAzureCli(host.BaseAddress, FunctionKey);

        // deploy-smoke.sh: health, the key on /api/model and /api/classify and, with no model published, the
        // documented stop (exit 3, 503 NoModel) before the upload step.
        var (exitCode, output) = await az.RunScriptAsync("deploy-smoke.sh", new Dictionary<string, string> { ["SMOKE_WAIT_SECONDS"] = "60" }, "rg-local", az.WriteImage());
        Assert.True(exitCode == 3, $"deploy-smoke.sh exit {exitCode}:\n{output}");
        Assert.Contains("health: 200", output, StringComparison.Ordinal);
        Assert.Contains("model: HTTP 503", output, StringComparison.Ordinal);
        Assert.Contains("classify: HTTP 503", output, StringComparison.Ordinal);
        Assert.Contains("NoModel", output, StringComparison.Ordinal);
        Assert.DoesNotContain(FunctionKey, output, StringComparison.Ordinal);

        // deploy-eventgrid.sh: waits for health and the key, then deploys infra/eventgrid.bicep with the main
        // deployment's outputs, and retries when the first attempt fails.
        (exitCode, output) = await az.RunScriptAsync("deploy-eventgrid.sh",
            new Dictionary<string, string> { ["DEPLOY_WAIT_SECONDS"] = "60", ["DEPLOY_RETRY_SECONDS"] = "1", ["DEPLOY_ATTEMPTS"] = "3" }, "rg-local");
        Assert.True(exitCode == 0, $"deploy-eventgrid.sh exit {exitCode}:\n{output}");
        var deployments = az.Deployments.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, deployments.Length);
        Assert.All(deployments, call =>
        {
            Assert.Contains("-g rg-local -n classifier-eventgrid --template-file infra/eventgrid.bicep", call, StringComparison.Ordinal);
            Assert.Contains("functionAppName=func-local systemTopicName=evgt-local imagesContainerName=images", call, StringComparison.Ordinal);
        });
    }

    private const string FunctionKey = "smoke-test-function-key-000000000000000000000";

    /// <summary>The two storage connections, as connection strings to the test Azurite, on a host that believes it is on Flex.</summary>
    private static Dictionary<string, string> StorageSettings()
    {
        var storage = Environment.GetEnvironmentVariable("CLASSIFIER_TEST_STORAGE") is { Length: > 0 } value
            ? value
            : throw new InvalidOperationException("CLASSIFIER_TEST_STORAGE is not set. Run the tests with scripts/test.sh, which starts Azurite and sets it.");
        return new Dictionary<string, string>
        {
            ["AzureWebJobsStorage"] = storage,
            ["ClassifierStorage"] = storage,
            ["WEBSITE_SKU"] = "FlexConsumption",
            // Azure gives every app a host id; a host outside Azure that believes it is on Flex needs one set.
            ["AzureFunctionsWebHost__hostid"] = "flex-package-test",
            // The host's "default" function key (run.sh; Core Tools does not check keys).
            ["FUNCTIONS_HOST_FUNCTION_KEY"] = FunctionKey,
        };
    }

    /// <summary>The <c>Classifier__*</c> app settings infra/modules/functionApp.bicep sets, with their values resolved.</summary>
    private IEnumerable<(string Key, string Value)> ClassifierSettingsFromTemplate()
    {
        var (deployment, template) = compiled.Main.Module("functionApp");
        var config = Assert.Single(template.OfType("Microsoft.Web/sites/config"), c => ((string?)c["name"])!.Contains("appsettings", StringComparison.Ordinal));
        foreach (var (key, node) in config["properties"]!.AsObject())
        {
            if (!key.StartsWith("Classifier__", StringComparison.Ordinal))
            {
                continue;
            }
            var value = (string)node!;
            if (key.StartsWith("Classifier__CustomVision", StringComparison.Ordinal))
            {
                // Deployment parameters (projects, a Key Vault reference or a secure key), empty by default: the app starts with them empty.
                yield return (key, "");
                continue;
            }
            var parameter = System.Text.RegularExpressions.Regex.Match(value, @"^\[parameters\('(\w+)'\)\]$");
            if (parameter.Success)
            {
                value = compiled.Main.Resolve((string?)deployment["properties"]!["parameters"]![parameter.Groups[1].Value]!["value"])!;
            }
            Assert.DoesNotContain("[", value, StringComparison.Ordinal);
            yield return (key, value);
        }
    }
}
