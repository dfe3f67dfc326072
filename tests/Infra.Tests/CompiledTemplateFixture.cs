namespace ServerlessClassifier.Infra.Tests;

/// <summary>infra/main.bicep compiled once for the structural tests.</summary>
public sealed class CompiledTemplateFixture
{
    public CompiledTemplateFixture()
    {
        var result = BicepCli.Run("build", BicepCli.MainTemplate, "--stdout");
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException("bicep build failed: " + result.Describe());
        }
        Json = result.StandardOutput;
        Main = ArmTemplate.Parse(Json);
    }

    public string Json { get; }

    internal ArmTemplate Main { get; }
}
