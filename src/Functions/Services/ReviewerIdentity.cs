using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using ServerlessClassifier.Functions.Options;
using ServerlessClassifier.ModelCore.Review;

namespace ServerlessClassifier.Functions.Services;

/// <summary>Where the review API learns who is calling (<c>Classifier:ReviewIdentity</c>).</summary>
public enum ReviewIdentitySource
{
    /// <summary>App Service authentication (Easy Auth) with Microsoft Entra ID: the <c>x-ms-client-principal</c> header the platform sets.</summary>
    EasyAuth,

    /// <summary>Everyone is <see cref="ReviewerIdentity.DevelopmentActor"/> with both roles: for a local host only; the app refuses to start with it in Azure.</summary>
    Development,
}

/// <summary>The app roles the review API knows (Microsoft Entra ID app roles, the <c>roles</c> claim).</summary>
public static class ReviewRoles
{
    /// <summary>May list the queue and label (or discard) uploads with the live model's classes.</summary>
    public const string Reviewer = "Reviewer";

    /// <summary>May approve or reject staged labels (what enters the training data), and, with <see cref="Reviewer"/>, label with a new class.</summary>
    public const string Approver = "Approver";
}

/// <summary>A caller of the review API: who, and which of <see cref="ReviewRoles"/> they hold.</summary>
public sealed record Reviewer(ReviewActor Actor, IReadOnlyList<string> Roles)
{
    public bool Has(string role) => Roles.Contains(role, StringComparer.Ordinal);
}

/// <summary>
/// Reads the caller of a review request, once per request, as <c>Classifier:ReviewIdentity</c> says:
/// <list type="bullet">
/// <item><b>EasyAuth</b> (the default): the <c>x-ms-client-principal</c> header, base64 JSON
/// <c>{ auth_typ, claims: [{ typ, val }], name_typ, role_typ }</c>, which App Service authentication sets for a signed-in
/// caller and strips from outside requests. The id is the object id claim, the name the <c>name_typ</c> claim (else
/// <c>name</c>, <c>preferred_username</c>), the roles the <c>roles</c> claims (Entra ID app roles) or those of
/// <c>role_typ</c>. No header, or one that is not such JSON: 401 with the same generic answer. Because only App
/// Service removes a forged header, in Azure the header is trusted only while App Service authentication is on
/// (<c>WEBSITE_AUTH_ENABLED=True</c>, which the platform sets); otherwise every review request is answered 503.</item>
/// <item><b>Development</b>: every caller is <see cref="DevelopmentActor"/>, a Reviewer and an Approver. The app refuses to
/// start with it in Azure (<see cref="StartupChecks"/>).</item>
/// </list>
/// A caller without the role a request needs is answered 403. Answers are RFC 9457 problems
/// (<see cref="InvalidRequestException"/>, answered by the worker's middleware).
/// </summary>
public sealed partial class ReviewerIdentity(IOptions<ClassifierOptions> options, IConfiguration configuration, ILogger<ReviewerIdentity> logger)
{
    public const string PrincipalHeader = "x-ms-client-principal";

    /// <summary>The fixed identity of <see cref="ReviewIdentitySource.Development"/>.</summary>
    public static readonly ReviewActor DevelopmentActor = new() { Id = "development", Name = "Development reviewer", Source = ReviewActor.Sources.Development };

    private const string ObjectIdClaim = "http://schemas.microsoft.com/identity/claims/objectidentifier";
    private const string NameIdentifierClaim = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier";
    private const string RolesClaim = "roles";
    private const int MaxHeaderLength = 16 * 1024;

    private static readonly string[] NameClaims = ["name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "upn", "email"];

    private static readonly IReadOnlyList<string> AllRoles = [ReviewRoles.Reviewer, ReviewRoles.Approver];

    /// <summary>The caller, who must hold at least one of <paramref name="roles"/> (403 otherwise).</summary>
    public Reviewer Require(HttpRequest request, params string[] roles)
    {
        ArgumentNullException.ThrowIfNull(roles);
        var reviewer = Read(request);
        if (!roles.Any(reviewer.Has))
        {
            throw new InvalidRequestException(StatusCodes.Status403Forbidden, roles.Contains(ReviewRoles.Reviewer) ? "NotAReviewer" : "NotAnApprover",
                $"This needs the {string.Join(" or ", roles)} role, which {reviewer.Actor.Name} does not have.");
        }
        return reviewer;
    }

    /// <summary>The caller, signed in (401 otherwise); roles not checked.</summary>
    public Reviewer Read(HttpRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (options.Value.ReviewIdentity == ReviewIdentitySource.Development)
        {
            return new Reviewer(DevelopmentActor, AllRoles);
        }
        if (AzureHosting.IsInAzure(configuration) && !AzureHosting.IsEasyAuthEnabled(configuration))
        {
            LogEasyAuthOff();
            throw new InvalidRequestException(StatusCodes.Status503ServiceUnavailable, "SignInUnavailable",
                "Reviewing needs App Service authentication, which is not turned on for this app.");
        }
        var header = request.Headers[PrincipalHeader].ToString();
        if (header.Length == 0)
        {
            throw SignInRequired();
        }
        if (Parse(header) is not { } reviewer)
        {
            LogUnreadablePrincipal(header.Length);
            throw SignInRequired();
        }
        return reviewer;
    }

    /// <summary>The caller an <c>x-ms-client-principal</c> value describes, or null when it is not well-formed base64 JSON with an id.</summary>
    public static Reviewer? Parse(string header)
    {
        if (string.IsNullOrEmpty(header) || header.Length > MaxHeaderLength)
        {
            return null;
        }
        var bytes = new byte[header.Length];
        if (!Convert.TryFromBase64String(header, bytes, out var length))
        {
            return null;
        }
        try
        {
            using var json = JsonDocument.Parse(bytes.AsMemory(0, length));
            var root = json.RootElement;
            if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("claims", out var claimsElement) || claimsElement.ValueKind != JsonValueKind.Array)
            {
                return null;
            }
            var claims = new List<(string Type, string Value)>();
            foreach (var claim in claimsElement.EnumerateArray())
            {
                if (claim.ValueKind == JsonValueKind.Object && Text(claim, "typ") is { } type && Text(claim, "val") is { } value)
                {
                    claims.Add((type, value));
                }
            }
            string? First(params string?[] types) => types.Where(t => t is not null).Select(t => claims.FirstOrDefault(c => c.Type == t && c.Value.Length > 0).Value).FirstOrDefault(v => v is not null);
            var id = First(ObjectIdClaim, "oid", NameIdentifierClaim, "sub");
            if (id is null)
            {
                return null;
            }
            var roleType = Text(root, "role_typ");
            var roles = claims.Where(c => c.Type == RolesClaim || c.Type == roleType).Select(c => c.Value).Distinct(StringComparer.Ordinal).ToList();
            var provider = Text(root, "auth_typ") is { Length: > 0 } authType ? $"{ReviewActor.Sources.EasyAuth}:{authType}" : ReviewActor.Sources.EasyAuth;
            var name = First([Text(root, "name_typ"), .. NameClaims]) ?? id;
            return new Reviewer(new ReviewActor { Id = id, Name = name, Source = provider }, roles);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string? Text(JsonElement element, string property) =>
        element.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static InvalidRequestException SignInRequired() =>
        new(StatusCodes.Status401Unauthorized, "SignInRequired", "Sign in to review: the review API needs a signed-in Reviewer or Approver, not only a function key.");

    [LoggerMessage(60, LogLevel.Warning, "A review request carried an x-ms-client-principal header of {Length} characters that is not base64 JSON with an id; answered 401")]
    private partial void LogUnreadablePrincipal(int length);

    [LoggerMessage(61, LogLevel.Error, "A review request was refused (503): Classifier:ReviewIdentity is EasyAuth but App Service authentication is off (WEBSITE_AUTH_ENABLED is not True), so x-ms-client-principal could be forged; turn authentication on (docs/deploy.md)")]
    private partial void LogEasyAuthOff();
}

/// <summary>What the platform tells the app about where it runs (environment variables, in the app's configuration).</summary>
public static class AzureHosting
{
    private static readonly string[] HostingVariables = ["WEBSITE_INSTANCE_ID", "WEBSITE_SITE_NAME", "WEBSITE_SKU"];

    /// <summary>
    /// True when the app runs in Azure: App Service sets <c>WEBSITE_INSTANCE_ID</c> and <c>WEBSITE_SITE_NAME</c>, Flex
    /// Consumption <c>WEBSITE_SKU</c> (the Functions host tells its plans apart by the same variables). A local host sets none.
    /// </summary>
    public static bool IsInAzure(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return HostingVariables.Any(name => !string.IsNullOrWhiteSpace(configuration[name]));
    }

    /// <summary>True when App Service authentication is on (the platform sets <c>WEBSITE_AUTH_ENABLED=True</c>, which the Functions host also reads).</summary>
    public static bool IsEasyAuthEnabled(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return bool.TryParse(configuration["WEBSITE_AUTH_ENABLED"], out var enabled) && enabled;
    }
}
