namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// A fact that needs the Functions host: skipped with the reason when none is available and none was asked for
/// (<see cref="FunctionsHostLocation.SkipReason"/>); run, and failing, when one was asked for but is missing.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class HostFactAttribute : FactAttribute
{
    public HostFactAttribute()
    {
        if (FunctionsHostLocation.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
