namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// A fact that needs the real Functions host: skipped with the reason where there is none and none was asked for
/// (<see cref="FunctionsHost.SkipReason"/>); run, and failing, when one was asked for but is missing.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class HostFactAttribute : FactAttribute
{
    public HostFactAttribute()
    {
        if (FunctionsHost.SkipReason is { } reason)
        {
            Skip = reason;
        }
    }
}
