using System.Text.Json.Serialization;

namespace ServerlessClassifier.ModelCore.Review;

/// <summary>
/// Who labelled an upload or decided on a label, as it is recorded: a stable id (the Microsoft Entra object id of a
/// signed-in person, the fixed development identity, or the name a command-line operator gave), a name to show, and
/// how the identity was established (<see cref="Sources"/>).
/// </summary>
public sealed record ReviewActor
{
    [JsonPropertyName("id")]
    public required string Id { get; init; }

    [JsonPropertyName("name")]
    public required string Name { get; init; }

    /// <summary>A <see cref="Sources"/> value.</summary>
    [JsonPropertyName("source")]
    public required string Source { get; init; }

    /// <summary>Values of <see cref="Source"/>.</summary>
    public static class Sources
    {
        /// <summary>App Service authentication's <c>x-ms-client-principal</c>, followed by its identity provider (<c>easyAuth:aad</c>).</summary>
        public const string EasyAuth = "easyAuth";

        /// <summary>The Functions app's fixed development identity (<c>Classifier:ReviewIdentity=Development</c>, never in Azure).</summary>
        public const string Development = "development";

        /// <summary>A <c>trainjob</c> operator's Azure sign-in (the token its storage requests use).</summary>
        public const string AzureIdentity = "azureIdentity";

        /// <summary>A name a <c>trainjob</c> operator typed (<c>--reviewer</c>, <c>--approver</c>): storage reached with a connection string proves no identity.</summary>
        public const string CommandLine = "commandLine";
    }
}
