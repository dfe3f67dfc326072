using Microsoft.Extensions.Configuration;
using ServerlessClassifier.Functions.Services;

namespace ServerlessClassifier.Functions;

/// <summary>
/// What the worker checks before it starts, because the Functions host would otherwise fail quietly:
/// <list type="bullet">
/// <item>App settings that the host, not this worker, reads. The blob trigger's path
/// <c>%Classifier:ImagesContainer%/{name}</c>, the sweep timer's <c>%Classifier:SweepSchedule%</c> and the shard queue
/// trigger's <c>%Classifier:ShardQueue%</c> are binding expressions the host resolves from app settings when it indexes
/// the functions, with no default: without them it disables those functions (uploads are then never classified, fanned-out
/// jobs never run) and, on Flex Consumption, may not
/// start at all. The worker cannot supply a default, so it refuses to start and names what to set. The
/// infrastructure (infra/modules/functionApp.bicep) and local.settings.example.json set them.</item>
/// <item>On Flex Consumption (<c>WEBSITE_SKU=FlexConsumption</c>), the package built for it
/// (<c>-p:FlexConsumption=true</c>): Flex supports only Event Grid-source blob triggers.</item>
/// <item>In Azure (<see cref="AzureHosting.IsInAzure"/>), not <c>Classifier:ReviewIdentity=Development</c>: it makes every
/// caller with a function key a Reviewer and an Approver of what enters the training data.</item>
/// </list>
/// </summary>
internal static class StartupChecks
{
    /// <summary>Configuration key (app setting name with <c>__</c>) and the value the infrastructure sets.</summary>
    public static readonly IReadOnlyList<(string Key, string Example)> HostResolvedSettings =
    [
        ("Classifier:ImagesContainer", "images"),
        ("Classifier:SweepSchedule", "0 */5 * * * *"),
        ("Classifier:ShardQueue", "classify-shards"),
    ];

    private const string ReviewIdentityKey = "Classifier:ReviewIdentity";

    /// <summary>True when this assembly was built without the polling-source blob trigger.</summary>
    public static bool IsFlexConsumptionBuild =>
#if FLEX_CONSUMPTION
        true;
#else
        false;
#endif

    /// <summary>Throws with one message naming every problem found; returns when there is none.</summary>
    public static void Run(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var problems = new List<string>();
        var missing = HostResolvedSettings.Where(setting => string.IsNullOrWhiteSpace(configuration[setting.Key])).ToList();
        if (missing.Count > 0)
        {
            var names = string.Join(", ", missing.Select(setting => $"{setting.Key.Replace(":", "__", StringComparison.Ordinal)} (e.g. \"{setting.Example}\")"));
            problems.Add(
                $"Missing required app setting(s): {names}. The Functions host resolves the blob trigger path " +
                "%Classifier:ImagesContainer%/{name}, the timer schedule %Classifier:SweepSchedule% and the queue %Classifier:ShardQueue% " +
                "from app settings and has no default for them: without them it disables the blob functions, SweepUnclassifiedImages " +
                "and ClassifyShard, and uploads are never classified. Set them (infra/main.bicep and src/Functions/local.settings.example.json do).");
        }
        if (string.Equals(configuration["WEBSITE_SKU"], "FlexConsumption", StringComparison.OrdinalIgnoreCase) && !IsFlexConsumptionBuild)
        {
            problems.Add(
                "This package contains the polling-source blob trigger ClassifyUploadedImage, which Flex Consumption does " +
                "not support: publish it with `dotnet publish src/Functions -c Release -p:FlexConsumption=true` (docs/deploy.md).");
        }
        if (AzureHosting.IsInAzure(configuration)
            && string.Equals(configuration[ReviewIdentityKey], nameof(ReviewIdentitySource.Development), StringComparison.OrdinalIgnoreCase))
        {
            problems.Add(
                $"{ReviewIdentityKey.Replace(":", "__", StringComparison.Ordinal)} is Development, which makes every caller with a function key a Reviewer " +
                "and an Approver of the training data; it is for a local host only. In Azure remove it (the default is EasyAuth: " +
                "App Service authentication with Microsoft Entra ID, docs/deploy.md).");
        }
        if (problems.Count > 0)
        {
            throw new InvalidOperationException("ServerlessClassifier.Functions cannot start. " + string.Join(" ", problems));
        }
    }
}
