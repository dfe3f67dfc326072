using System.Diagnostics;
using System.Security.Cryptography;

namespace ServerlessClassifier.Tests.Common;

/// <summary>
/// Runs the reference scripts of tests/fixtures with Debian's interpreter, the one that sees python3-torch
/// and python3-torchvision (scripts/test.sh installs them), and keeps the files they make in a cache outside the
/// clone (<see cref="CacheRoot"/>), keyed by the script's SHA-256: made once per machine, made again when the
/// script changes or the files are missing.
/// </summary>
public static class ReferencePython
{
    /// <summary>Where the made files are kept; scripts/test.sh sets it (to the default below unless it was set).</summary>
    public const string CacheVariable = "CLASSIFIER_TEST_REFERENCE_CACHE";

    /// <summary><c>$CLASSIFIER_TEST_REFERENCE_CACHE</c>, else <c>${XDG_CACHE_HOME:-~/.cache}/serverless-classifier/test-references</c>.</summary>
    public static string CacheRoot =>
        Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } root
            ? root
            : Path.Combine(
                Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
                "serverless-classifier", "test-references");

    /// <summary>Runs <paramref name="script"/> and returns its last output line; a non-zero exit fails the test with its stderr.</summary>
    public static string Run(string script, params string[] arguments)
    {
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(ScriptPath(script));
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

    /// <summary>
    /// The folder that <c>script arguments... FOLDER</c> writes, from the cache: <c>CacheRoot/script/hash/arguments</c>
    /// (<c>files</c> for a script without arguments).
    /// When it is not there the script writes it beside, under a temporary name that is renamed into place once the
    /// script succeeded, so a folder in the cache is always complete (and two processes making it at once both end
    /// up with the same one).
    /// </summary>
    public static string Cached(string script, params string[] arguments)
    {
        var hash = Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(ScriptPath(script))))[..16];
        var folder = Path.Combine(CacheRoot, Path.GetFileNameWithoutExtension(script), hash, arguments.Length == 0 ? "files" : string.Join('-', arguments));
        if (Directory.Exists(folder))
        {
            return folder;
        }
        Directory.CreateDirectory(Path.GetDirectoryName(folder)!);
        var partial = $"{folder}.partial-{Guid.NewGuid():N}";
        try
        {
            Run(script, [.. arguments, partial]);
            Directory.Move(partial, folder);
        }
        catch (IOException) when (Directory.Exists(folder))
        {
            // Another process made it first.
        }
        finally
        {
            if (Directory.Exists(partial))
            {
                Directory.Delete(partial, recursive: true);
            }
        }
        return folder;
    }

    private static string ScriptPath(string script) => Path.Combine(TestAssets.RepositoryRoot, "tests", "fixtures", script);
}
