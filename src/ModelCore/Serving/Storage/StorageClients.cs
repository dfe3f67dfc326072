using Azure.Core;
using Azure.Identity;
using Azure.Storage.Blobs;
using Azure.Storage.Queues;
using Microsoft.Extensions.Configuration;

namespace ServerlessClassifier.ModelCore.Storage;

/// <summary>
/// Builds the blob client from the configuration section that the Functions host also reads for its
/// bindings (default name <see cref="DefaultConnectionName"/>), so the app, its triggers and the
/// training job share one set of setting names:
/// <list type="bullet">
/// <item>locally, the section's value is a connection string (Azurite: <c>UseDevelopmentStorage=true</c> or a full one);</item>
/// <item>in Azure, identity-based: <c>&lt;name&gt;__blobServiceUri</c> and <c>&lt;name&gt;__queueServiceUri</c> (or <c>__serviceUri</c>), with
/// <c>__credential=managedidentity</c> and optionally <c>__clientId</c> for a user-assigned identity;
/// otherwise DefaultAzureCredential. No account key is ever needed.</item>
/// </list>
/// </summary>
public static class StorageClients
{
    public const string DefaultConnectionName = "ClassifierStorage";

    public static BlobServiceClient CreateBlobServiceClient(IConfiguration configuration, string connectionName = DefaultConnectionName, BlobClientOptions? options = null) =>
        Create(configuration, connectionName, "blob",
            connectionString => new BlobServiceClient(connectionString, options),
            (uri, credential) => new BlobServiceClient(uri, credential, options));

    /// <summary>
    /// The queue client of the same connection (<c>&lt;name&gt;__queueServiceUri</c> in Azure). Messages are base64, as
    /// the Functions host's queue trigger reads them by default (host.json <c>extensions.queues.messageEncoding</c>).
    /// </summary>
    public static QueueServiceClient CreateQueueServiceClient(IConfiguration configuration, string connectionName = DefaultConnectionName)
    {
        var options = new QueueClientOptions { MessageEncoding = QueueMessageEncoding.Base64 };
        return Create(configuration, connectionName, "queue",
            connectionString => new QueueServiceClient(connectionString, options),
            (uri, credential) => new QueueServiceClient(uri, credential, options));
    }

    /// <summary>
    /// The credential an identity-based connection signs its requests with; null for a connection string (which proves no
    /// identity: it holds the account's key, or Azurite's).
    /// </summary>
    public static TokenCredential? CreateCredential(IConfiguration configuration, string connectionName = DefaultConnectionName)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(connectionName);
        return string.IsNullOrWhiteSpace(section.Value) ? CreateCredential(section) : null;
    }

    private static T Create<T>(IConfiguration configuration, string connectionName, string service, Func<string, T> fromConnectionString, Func<Uri, TokenCredential, T> fromIdentity)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var section = configuration.GetSection(connectionName);
        if (!string.IsNullOrWhiteSpace(section.Value))
        {
            return fromConnectionString(section.Value);
        }
        var setting = $"{service}ServiceUri";
        var uri = section[setting] ?? section["serviceUri"];
        if (string.IsNullOrWhiteSpace(uri))
        {
            throw new InvalidOperationException(
                $"Storage is not configured: set {connectionName} to a connection string (e.g. UseDevelopmentStorage=true for Azurite), " +
                $"or {connectionName}__{setting} to https://<account>.{service}.core.windows.net for an identity-based connection.");
        }
        if (!Uri.TryCreate(uri, UriKind.Absolute, out var serviceUri))
        {
            throw new InvalidOperationException($"{connectionName}__{setting} is not an absolute URI.");
        }
        return fromIdentity(serviceUri, CreateCredential(section));
    }

    private static TokenCredential CreateCredential(IConfigurationSection section)
    {
        var clientId = section["clientId"];
        return string.Equals(section["credential"], "managedidentity", StringComparison.OrdinalIgnoreCase)
            ? new ManagedIdentityCredential(string.IsNullOrWhiteSpace(clientId) ? ManagedIdentityId.SystemAssigned : ManagedIdentityId.FromUserAssignedClientId(clientId))
            : new DefaultAzureCredential(new DefaultAzureCredentialOptions { ManagedIdentityClientId = string.IsNullOrWhiteSpace(clientId) ? null : clientId });
    }
}
