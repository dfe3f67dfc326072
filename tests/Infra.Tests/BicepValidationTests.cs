using System.Text.Json.Nodes;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>The Bicep files compile and lint clean with the bundled CLI (warnings count as failures).</summary>
public sealed class BicepValidationTests
{
    public static TheoryData<string> Templates => new() { BicepCli.MainTemplate, BicepCli.EventGridTemplate };

    [Theory]
    [MemberData(nameof(Templates))]
    public void Build_Template_SucceedsWithoutWarnings(string template)
    {
        var result = BicepCli.Run("build", template, "--stdout");

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True(result.StandardError.Trim().Length == 0, result.Describe());
        Assert.NotNull(JsonNode.Parse(result.StandardOutput));
    }

    [Theory]
    [MemberData(nameof(Templates))]
    public void Lint_Template_ReportsNoDiagnostics(string template)
    {
        var result = BicepCli.Run("lint", template);

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True((result.StandardOutput + result.StandardError).Trim().Length == 0, result.Describe());
    }

    [Fact]
    public void Lint_MainParameters_ReportsNoDiagnostics()
    {
        var result = BicepCli.Run("lint", BicepCli.MainParameters);

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True((result.StandardOutput + result.StandardError).Trim().Length == 0, result.Describe());
    }

    [Fact]
    public void BuildParams_MainParameters_GivesTheDocumentedDefaults()
    {
        var result = BicepCli.Run("build-params", BicepCli.MainParameters, "--stdout");

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True(result.StandardError.Trim().Length == 0, result.Describe());
        var parametersJson = (string?)JsonNode.Parse(result.StandardOutput)?["parametersJson"];
        var parameters = JsonNode.Parse(parametersJson ?? "{}")?["parameters"];
        Assert.NotNull(parameters);
        Assert.False(string.IsNullOrEmpty((string?)parameters["environmentName"]?["value"]));
        Assert.Equal(2048, (int?)parameters["functionInstanceMemoryMB"]?["value"]);
        // The subscription is not part of this deployment any more (infra/eventgrid.bicep).
        Assert.Null(parameters["deployEventGridSubscription"]);
        // The env var overrides used by docs/deploy.md are unset in tests: the defaults apply.
        if (Environment.GetEnvironmentVariable("CLASSIFIER_REGISTRY_SKU") is null)
        {
            Assert.Equal("Basic", (string?)parameters["containerRegistrySku"]?["value"]);
        }
    }
}
