namespace ServerlessClassifier.Infra.Tests.Host;

/// <summary>A test that needs the real Functions host: skipped, with the reason, where there is none (see <see cref="FunctionsHost.SkipReason"/>).</summary>
[AttributeUsage(AttributeTargets.Method)]
internal sealed class FunctionsHostFactAttribute : FactAttribute
{
    public FunctionsHostFactAttribute()
    {
        Skip = FunctionsHost.SkipReason();
    }
}
