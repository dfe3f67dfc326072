using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ServerlessClassifier.Functions;

/// <summary>
/// The worker's log filters. The Azure SDK (categories <c>Azure.*</c>, forwarded by <c>AddAzureClients</c>) logs
/// every storage request and response with its headers at Information: about 1,600 lines in 7 minutes of light use
/// under the Functions host. Only its warnings and errors are kept; <c>host.json</c> does the same for the host.
/// Application Insights' own default rule (Warning and above) is removed, so the app's Information logs (model
/// swaps, refusals, predictions) reach it as the worker samples do.
/// </summary>
public static class ClassifierLogging
{
    /// <summary>Category prefix of the Azure SDK's logs.</summary>
    public const string AzureSdkCategory = "Azure";

    private const string ApplicationInsightsProvider = "Microsoft.Extensions.Logging.ApplicationInsights.ApplicationInsightsLoggerProvider";

    public static ILoggingBuilder AddClassifierLogFilters(this ILoggingBuilder logging)
    {
        ArgumentNullException.ThrowIfNull(logging);
        logging.AddFilter(AzureSdkCategory, LogLevel.Warning);
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
