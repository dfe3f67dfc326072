namespace ServerlessClassifier.Functions.CustomVision;

/// <summary>
/// The Custom Vision project ids this app answers for, each mapped to a named model
/// (<see cref="Options.ClassifierOptions.CustomVisionProjects"/>: <c>&lt;guid&gt;=&lt;model&gt;</c> pairs).
/// </summary>
public sealed class CustomVisionProjects
{
    private readonly Dictionary<Guid, string> models;

    private CustomVisionProjects(Dictionary<Guid, string> models) => this.models = models;

    public int Count => models.Count;

    /// <summary>The model a project id is mapped to, or null.</summary>
    public string? ModelFor(Guid project) => models.GetValueOrDefault(project);

    /// <summary>Whether the setting parses (options validation at start).</summary>
    public static bool TryParse(string? setting, out CustomVisionProjects? projects)
    {
        try
        {
            projects = Parse(setting);
            return true;
        }
        catch (FormatException)
        {
            projects = null;
            return false;
        }
    }

    /// <summary>Parses the setting; says which pair is wrong and why (the start of the app fails with it).</summary>
    public static CustomVisionProjects Parse(string? setting)
    {
        var models = new Dictionary<Guid, string>();
        foreach (var pair in (setting ?? "").Split([',', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var equals = pair.IndexOf('=', StringComparison.Ordinal);
            if (equals < 0 || !Guid.TryParse(pair[..equals].Trim(), out var project))
            {
                throw new FormatException($"Classifier:CustomVisionProjects: \"{pair}\" is not <project id (a GUID)>=<model name>.");
            }
            var model = pair[(equals + 1)..].Trim();
            if (ModelCore.Storage.ModelNames.Problem(model) is { } problem)
            {
                throw new FormatException($"Classifier:CustomVisionProjects: project {project}: {problem}");
            }
            if (!models.TryAdd(project, model))
            {
                throw new FormatException($"Classifier:CustomVisionProjects: project {project} is listed twice.");
            }
        }
        return new CustomVisionProjects(models);
    }
}
