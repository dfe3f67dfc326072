using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;

namespace ServerlessClassifier.Functions;

/// <summary>
/// The worker's log filters. The Azure SDK (categories <c>Azure.*</c>, forwarded by <c>AddAzureClients</c>) logs
/// every storage request and response with its headers at Information: about 1,600 lines in 7 minutes of light use
/// under the Functions host. Only its warnings and errors are kept; <c>host.json</c> does the same for the host.
/// ASP.NET Core's per-answer Information lines are dropped too. The model's lifecycle (loads, swaps, refusals, failed
/// checks) is also written to standard output, where the Functions host picks it up: it drops worker logs that are
/// outside any invocation, and the refresh runs outside them. Application Insights' own default rule (Warning and above) is removed, so the app's Information logs (model
/// swaps, refusals, predictions) reach it as the worker samples do.
/// </summary>
public static class ClassifierLogging
{
    /// <summary>Category prefix of the Azure SDK's logs.</summary>
    public const string AzureSdkCategory = "Azure";

    /// <summary>Category prefix of the model's lifecycle (refresh service and provider), which the console also gets.</summary>
    public const string BackgroundCategory = "ServerlessClassifier.Functions.Services.Model";

    private const string AspNetCoreCategory = "Microsoft.AspNetCore";

    private const string ApplicationInsightsProvider = "Microsoft.Extensions.Logging.ApplicationInsights.ApplicationInsightsLoggerProvider";

    public static ILoggingBuilder AddClassifierLogFilters(this ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.AddFilter(AzureSdkCategory, LogLevel.Warning);
        // MVC's "Executing OkObjectResult, writing value of type ..." for every HTTP answer.
        logging.AddFilter(AspNetCoreCategory, LogLevel.Warning);
        // The host drops worker logs that belong to no invocation (model refreshes run in the background), but it
        // logs what the worker writes to standard output: the model's lifecycle goes there too, one line each.
        logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.ColorBehavior = LoggerColorBehavior.Disabled;
        });
        logging.AddFilter<ConsoleLoggerProvider>(null, LogLevel.None);
        logging.AddFilter<ConsoleLoggerProvider>(BackgroundCategory, LogLevel.Information);
        logging.Services.Configure<LoggerFilterOptions>(options =>
        {
            var defaultRule = options.Rules.FirstOrDefault(rule => rule.ProviderName == ApplicationInsightsProvider && rule.CategoryName is null);
            if (defaultRule is not null)
            {
                options.Rules.Remove(defaultRule);
            }
        });
        return logging;
    }
}
