using System.Text;
using System.Text.Json;
using Azure.Core;
using ServerlessClassifier.ModelCore.Review;
using ServerlessClassifier.ModelCore.Storage;
using ServerlessClassifier.TrainJob.Cli;

namespace ServerlessClassifier.TrainJob.Commands.Review;

/// <summary>
/// Who runs a review command, for the label records. With identity-based storage (<c>ClassifierStorage__blobServiceUri</c>)
/// it is the Azure sign-in the storage requests use (the object id and name in its access token), which the operator
/// cannot misstate. With a connection string nothing proves an identity, so the operator names themselves
/// (<c>--reviewer</c>, <c>--approver</c>) and the record says it was typed. Either way the command's privilege is the
/// storage role it holds (writing the review and training containers), not an app role: anyone who can write the
/// training container can add images to it without this command.
/// </summary>
internal static class OperatorIdentity
{
    private static readonly string[] StorageScope = ["https://storage.azure.com/.default"];
    private static readonly string[] NameClaims = ["upn", "preferred_username", "unique_name", "name", "email", "app_displayname", "appid"];

    public static async Task<ReviewActor> ResolveAsync(CliContext context, string? typed, string option, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (StorageClients.CreateCredential(context.Storage.Configuration) is { } credential)
        {
            var token = await credential.GetTokenAsync(new TokenRequestContext(StorageScope), cancellationToken);
            return FromAccessToken(token.Token) ?? throw new InvalidOperationException("The Azure sign-in's access token names no object id, so the label record could not say who you are.");
        }
        if (string.IsNullOrWhiteSpace(typed))
        {
            throw new UsageException($"say who you are with {option} <name>: with a connection string there is no signed-in identity to record.");
        }
        return new ReviewActor { Id = typed.Trim(), Name = typed.Trim(), Source = ReviewActor.Sources.CommandLine };
    }

    /// <summary>The identity in a Microsoft Entra access token (its payload's <c>oid</c> and a name claim); null when it is not a JWT with an <c>oid</c>.</summary>
    public static ReviewActor? FromAccessToken(string token)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return null;
        }
        try
        {
            var payload = parts[1].Replace('-', '+').Replace('_', '/');
            payload = payload.PadRight(payload.Length + ((4 - (payload.Length % 4)) % 4), '=');
            using var json = JsonDocument.Parse(Encoding.UTF8.GetString(Convert.FromBase64String(payload)));
            string? Claim(string name) => json.RootElement.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text ? text : null;
            return Claim("oid") is { } id
                ? new ReviewActor { Id = id, Name = NameClaims.Select(Claim).FirstOrDefault(n => n is not null) ?? id, Source = ReviewActor.Sources.AzureIdentity }
                : null;
        }
        catch (Exception e) when (e is FormatException or JsonException)
        {
            return null;
        }
    }
}
