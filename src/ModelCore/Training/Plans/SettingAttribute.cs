namespace ServerlessClassifier.ModelCore.Plans;

/// <summary>
/// Marks a property as one setting of a <see cref="TrainingPlan"/>, with its name for people. Every setting is printed at
/// the start of a run (<see cref="PlanSettings.Describe"/>) and compared on resume (<see cref="PlanSettings.Differences"/>),
/// so a new setting is both by carrying this attribute: there is no second list to keep.
/// </summary>
[AttributeUsage(AttributeTargets.Property, Inherited = true)]
public sealed class SettingAttribute(string name) : Attribute
{
    public string Name => name;
}
