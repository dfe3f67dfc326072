using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using ServerlessClassifier.Tests.Common;

namespace ServerlessClassifier.Functions.Tests.EndToEnd;

/// <summary>
/// Headless Chromium (Debian's <c>chromium</c> and <c>chromium-driver</c>, which scripts/test.sh installs) driven
/// through WebDriver (Selenium.WebDriver), with a fresh profile and nothing that reaches out to the network on its own.
/// </summary>
public sealed class Browser : IDisposable
{
    public const string ChromiumPath = "/usr/bin/chromium";
    public const string DriverPath = "/usr/bin/chromedriver";

    private readonly string profile = Directory.CreateTempSubdirectory("chromium-profile-").FullName;

    public Browser(int width = 1100, int height = 760)
    {
        var options = new ChromeOptions { BinaryLocation = ChromiumPath };
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--no-default-browser-check", $"--user-data-dir={profile}", $"--window-size={width},{height}", "--hide-scrollbars");
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(DriverPath)!, Path.GetFileName(DriverPath));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        Driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    public ChromeDriver Driver { get; }

    /// <summary>Null when the browser is installed; otherwise why tests that need it cannot run.</summary>
    public static string? MissingReason => File.Exists(ChromiumPath) && File.Exists(DriverPath)
        ? null
        : $"{ChromiumPath} or {DriverPath} is missing (apt-get install chromium chromium-driver; scripts/test.sh does it as root).";

    /// <summary>Waits until <paramref name="condition"/> holds (polling), or fails naming <paramref name="what"/>.</summary>
    public T WaitFor<T>(Func<IWebDriver, T?> condition, string what, int seconds = 30)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                if (condition(Driver) is { } value && !(value is bool b && !b))
                {
                    return value;
                }
            }
            catch (Exception e) when (e is NoSuchElementException or StaleElementReferenceException)
            {
                // Not there yet.
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"The page did not show {what} within {seconds} s. It shows: {Driver.FindElement(By.TagName("body")).Text}");
            }
            Thread.Sleep(100);
        }
    }

    /// <summary>Saves a screenshot as PNG to <c>$CLASSIFIER_SCREENSHOTS/&lt;name&gt;</c> when that folder is set (the README's are taken so), else to the temp folder.</summary>
    public string Screenshot(string name)
    {
        var folder = Environment.GetEnvironmentVariable("CLASSIFIER_SCREENSHOTS") is { Length: > 0 } dir ? dir : Path.GetTempPath();
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, name);
        Driver.GetScreenshot().SaveAsFile(path);
        return path;
    }

    public void Dispose()
    {
        Driver.Quit();
        Driver.Dispose();
        try
        {
            Directory.Delete(profile, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>A fact that needs the Functions host and the browser: skipped with the reason when either is missing and neither was asked for.</summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class BrowserFactAttribute : FactAttribute
{
    public BrowserFactAttribute()
    {
        if (FunctionsHost.SkipReason is { } reason)
        {
            Skip = reason;
        }
        else if (Browser.MissingReason is { } missing && !FunctionsHost.Required)
        {
            Skip = missing;
        }
    }
}
