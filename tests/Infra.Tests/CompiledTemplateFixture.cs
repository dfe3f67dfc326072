namespace ServerlessClassifier.Infra.Tests;

/// <summary>infra/main.bicep and infra/eventgrid.bicep compiled once for the structural tests.</summary>
public sealed class CompiledTemplateFixture
{
    public CompiledTemplateFixture()
    {
        Json = Build(BicepCli.MainTemplate);
        Main = ArmTemplate.Parse(Json);
        EventGridJson = Build(BicepCli.EventGridTemplate);
        EventGrid = ArmTemplate.Parse(EventGridJson);
    }

    public string Json { get; }

    public string EventGridJson { get; }

    internal ArmTemplate Main { get; }

    internal ArmTemplate EventGrid { get; }

    private static string Build(string template)
    {
        var result = BicepCli.Run("build", template, "--stdout");
        return result.ExitCode == 0 ? result.StandardOutput : throw new InvalidOperationException("bicep build failed: " + result.Describe());
    }
}
