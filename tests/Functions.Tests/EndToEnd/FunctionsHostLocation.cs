namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// Where the Azure Functions host is: <c>FUNCTIONS_HOST_DIR</c> (a folder with the host and its
/// <c>run.sh</c>; CI sets it) or Azure Functions Core Tools (<c>func</c> on PATH). The end-to-end
/// tests need one. When <c>FUNCTIONS_HOST_DIR</c> or <c>CI=true</c> is set, a missing host is a failure; on a
/// machine with neither, the tests are skipped and say why.
/// </summary>
internal sealed record FunctionsHostLocation(string? RunScript, string? Func)
{
    public const string DirectoryVariable = "FUNCTIONS_HOST_DIR";

    public static FunctionsHostLocation? Find()
    {
        if (Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } directory)
        {
            var script = Path.Combine(directory, "run.sh");
            return File.Exists(script) ? new FunctionsHostLocation(script, null) : null;
        }
        var func = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(p => Path.Combine(p, "func")).FirstOrDefault(File.Exists);
        return func is null ? null : new FunctionsHostLocation(null, func);
    }

    /// <summary>True when a host was asked for (FUNCTIONS_HOST_DIR set, or CI): then its absence fails the tests.</summary>
    public static bool Required =>
        Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 }
        || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>Why the end-to-end tests cannot run here, or null when they can (or must, and then fail).</summary>
    public static string? SkipReason => Find() is null && !Required
        ? $"No Azure Functions host: set {DirectoryVariable} to a folder with run.sh or install Core Tools (func)."
        : null;

    public static string MissingMessage => Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } directory
        ? $"{DirectoryVariable}={directory} has no run.sh."
        : "CI=true but there is no Functions host: set FUNCTIONS_HOST_DIR or put func on PATH.";
}
