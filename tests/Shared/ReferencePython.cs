using System.Diagnostics;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// Runs the reference scripts of tests/fixtures with Debian's interpreter, the one that sees python3-torch
/// and python3-torchvision (scripts/test.sh installs them).
/// </summary>
public static class ReferencePython
{
    /// <summary>Runs <paramref name="script"/> and returns its last output line; a non-zero exit fails the test with its stderr.</summary>
    public static string Run(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(TestAssets.RepositoryRoot, "tests", "fixtures", script));
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException("could not start /usr/bin/python3");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{script} exited with {process.ExitCode}: {stderr.Result}");
        return stdout.Trim().Split('\n')[^1];
    }
}
