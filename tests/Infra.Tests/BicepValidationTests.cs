using System.Text.Json.Nodes;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>The Bicep files compile and lint clean with the bundled CLI (warnings count as failures).</summary>
public sealed class BicepValidationTests
{
    [Fact]
    public void Build_MainTemplate_SucceedsWithoutWarnings()
    {
        var result = BicepCli.Run("build", BicepCli.MainTemplate, "--stdout");

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True(result.StandardError.Trim().Length == 0, result.Describe());
        Assert.NotNull(JsonNode.Parse(result.StandardOutput));
    }

    [Fact]
    public void Lint_MainTemplate_ReportsNoDiagnostics()
    {
        var result = BicepCli.Run("lint", BicepCli.MainTemplate);

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
    public void BuildParams_MainParameters_GivesAFirstDeploymentWithoutTheEventGridSubscription()
    {
        var result = BicepCli.Run("build-params", BicepCli.MainParameters, "--stdout");

        Assert.True(result.ExitCode == 0, result.Describe());
        Assert.True(result.StandardError.Trim().Length == 0, result.Describe());
        var parametersJson = (string?)JsonNode.Parse(result.StandardOutput)?["parametersJson"];
        var parameters = JsonNode.Parse(parametersJson ?? "{}")?["parameters"];
        Assert.NotNull(parameters);
        Assert.False(string.IsNullOrEmpty((string?)parameters["environmentName"]?["value"]));
        Assert.Equal(2048, (int?)parameters["functionInstanceMemoryMB"]?["value"]);
        // The env var overrides used by docs/deploy.md are unset in tests: the defaults apply.
        if (Environment.GetEnvironmentVariable("CLASSIFIER_DEPLOY_EVENTGRID_SUBSCRIPTION") is null)
        {
            Assert.False((bool?)parameters["deployEventGridSubscription"]?["value"]);
        }
    }
}
