namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>A plan that cannot run as asked: a value out of range, or a setting that does not apply to its mode or backbone.</summary>
public sealed class PlanException : ArgumentException
{
    public PlanException(string setting, string message) : base(message)
    {
        Setting = setting;
    }

    /// <summary>The setting's name for people (<see cref="SettingAttribute"/>).</summary>
    public string Setting { get; }
}
