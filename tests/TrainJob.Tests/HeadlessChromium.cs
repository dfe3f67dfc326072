using System.Diagnostics;

namespace ServerlessClassifier.TrainJob.Tests;

/// <summary>Headless Chromium for the HTML reports: the rendered DOM with the console log, and screenshots.</summary>
public static class HeadlessChromium
{
    private const string Executable = "/usr/bin/chromium";

    /// <summary>True where the reports can be rendered: Chromium is installed, or CI demands it (and then fails without it).</summary>
    public static bool Available => File.Exists(Executable) || Environment.GetEnvironmentVariable("CI") == "true";

    /// <summary>Where screenshots go: <c>CLASSIFIER_SCREENSHOTS</c> when set, else <paramref name="fallback"/>.</summary>
    public static string ScreenshotPath(string fallback, string name) =>
        Path.Combine(Environment.GetEnvironmentVariable("CLASSIFIER_SCREENSHOTS") is { Length: > 0 } dir ? dir : fallback, name);

    public static async Task<string> RunAsync(params string[] arguments) => (await RunWithConsoleAsync(arguments)).Out;

    /// <summary>Chromium's standard output, and its log with the page's console messages (CSP violations among them).</summary>
    public static async Task<(string Out, string Console)> RunWithConsoleAsync(params string[] arguments)
    {
        var profile = Directory.CreateTempSubdirectory("chromium-profile-").FullName;
        try
        {
            var start = new ProcessStartInfo(Executable) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in (string[])["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0", $"--user-data-dir={profile}", .. arguments])
            {
                start.ArgumentList.Add(a);
            }
            using var process = Process.Start(start)!;
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, $"chromium {string.Join(' ', arguments)} failed ({process.ExitCode}): {await error}");
            return (await output, await error);
        }
        finally
        {
            Directory.Delete(profile, recursive: true);
        }
    }
}
