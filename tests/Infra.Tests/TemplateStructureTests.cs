using System.Text.Json.Nodes;

namespace ServerlessClassifier.Infra.Tests;

/// <summary>
/// What the compiled template promises: identity-based access only, least-privilege roles, the
/// app-setting and environment contract the Functions app and TrainJob read, and no secrets out.
/// </summary>
public sealed class TemplateStructureTests(CompiledTemplateFixture compiled) : IClassFixture<CompiledTemplateFixture>
{
    // Built-in role definition ids.
    private const string StorageBlobDataOwner = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
    private const string StorageQueueDataContributor = "974c5e8b-45b9-4653-ba55-5f855dd0fb88";
    private const string StorageTableDataContributor = "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3";
    private const string MonitoringMetricsPublisher = "3913510d-42f4-4e42-8a64-420c390055eb";
    private const string KeyVaultSecretsUser = "4633458b-17de-408a-b874-0445c86b69e6";
    private const string AcrPull = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
    private const string Owner = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    private const string Contributor = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    private const string UserAccessAdministrator = "18d7d88d-d35c-4d12-aa0b-e0cb1d0e8a4b";
    private const string StorageAccountContributor = "17d1049b-9a84-46fb-8f53-869881c3d3ab";

    private ArmTemplate Main => compiled.Main;

    /// <summary>JSON text with quotes in template expressions left as they are.</summary>
    private static readonly System.Text.Json.JsonSerializerOptions Relaxed = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    [Fact]
    public void Storage_AllowsNeitherSharedKeysNorAnonymousAccess()
    {
        var account = Main.Module("storage").Template.Single("Microsoft.Storage/storageAccounts");
        var properties = account["properties"]!;

        Assert.Equal("StorageV2", (string?)account["kind"]);
        Assert.False((bool?)properties["allowSharedKeyAccess"]);
        Assert.False((bool?)properties["allowBlobPublicAccess"]);
        Assert.Equal("TLS1_2", (string?)properties["minimumTlsVersion"]);
        Assert.True((bool?)properties["supportsHttpsTrafficOnly"]);
    }

    [Fact]
    public void Storage_DataAccountHasTheClassifierContainers_HostAccountOnlyTheDeploymentContainer()
    {
        var containerNames = ModuleArray("storage", "containerNames");
        Assert.Equal(["images", "predictions", "models", "training", "training-models", "jobs", "features", "review", "checkpoints"], containerNames);

        // The Flex Consumption package is in the host's own account, alone.
        var appDeploymentContainer = Main.Resolve((string?)Main.Module("functionApp").Deployment["properties"]!["parameters"]!["deploymentContainerName"]!["value"]);
        Assert.Equal("[variables('deploymentContainerName')]", (string?)Main.Module("hostStorage").Deployment["properties"]!["parameters"]!["containerNames"]!["value"]![0]);
        Assert.Single(Main.Module("hostStorage").Deployment["properties"]!["parameters"]!["containerNames"]!["value"]!.AsArray());
        Assert.Equal("[variables('deploymentContainerName')]", (string?)Main.Module("functionApp").Deployment["properties"]!["parameters"]!["deploymentContainerName"]!["value"]);
        Assert.DoesNotContain(appDeploymentContainer, containerNames);
        Assert.Null(Main.Module("hostStorage").Deployment["properties"]!["parameters"]!["queueNames"]);
    }

    [Fact]
    public void Storage_CreatesTheShardQueueThatTheAppAndTheTrainJobShare_AndThePoisonQueuesTheAppSendsTo()
    {
        Assert.Equal(["classify-shards", "classify-shards-poison", "webjobs-blobtrigger-poison"], ModuleArray("storage", "queueNames"));
        var appQueue = Main.Module("functionApp").Deployment["properties"]!["parameters"]!["shardQueueName"]!["value"];
        var jobQueue = Main.Module("trainJob").Deployment["properties"]!["parameters"]!["shardQueueName"]!["value"];
        Assert.Equal("classify-shards", Main.Resolve((string?)appQueue));
        Assert.Equal("classify-shards", Main.Resolve((string?)jobQueue));
        Assert.Equal("[parameters('shardQueueName')]", AppSettings()["Classifier__ShardQueue"]);
    }

    [Fact]
    public void FunctionApp_IsFlexConsumptionDotnetIsolated10WithSystemIdentity()
    {
        var module = Main.Module("functionApp").Template;
        var plan = module.Single("Microsoft.Web/serverfarms");
        var site = module.Single("Microsoft.Web/sites");
        var config = site["properties"]!["functionAppConfig"]!;

        Assert.Equal("FlexConsumption", (string?)plan["sku"]!["tier"]);
        Assert.Equal("functionapp,linux", (string?)site["kind"]);
        Assert.Equal("SystemAssigned", (string?)site["identity"]!["type"]);
        Assert.True((bool?)site["properties"]!["httpsOnly"]);
        Assert.Equal("dotnet-isolated", (string?)config["runtime"]!["name"]);
        Assert.Equal("10.0", (string?)config["runtime"]!["version"]);
        Assert.Equal("SystemAssignedIdentity", (string?)config["deployment"]!["storage"]!["authentication"]!["type"]);
        Assert.Equal("[parameters('instanceMemoryMB')]", (string?)config["scaleAndConcurrency"]!["instanceMemoryMB"]);
        Assert.Equal("[parameters('maximumInstanceCount')]", (string?)config["scaleAndConcurrency"]!["maximumInstanceCount"]);
    }

    [Fact]
    public void FunctionApp_HasTheIdentityBasedSettingContractAndNoSecrets()
    {
        var settings = AppSettings();

        string[] expected =
        [
            "AzureWebJobsStorage__accountName",
            "ClassifierStorage__blobServiceUri",
            "ClassifierStorage__queueServiceUri",
            "ClassifierStorage__credential",
            "APPLICATIONINSIGHTS_CONNECTION_STRING",
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "Classifier__ImagesContainer",
            "Classifier__PredictionsContainer",
            "Classifier__ModelsContainer",
            "Classifier__TrainingContainer",
            "Classifier__ReviewContainer",
            "Classifier__NamedTrainingContainer",
            "Classifier__JobsContainer",
            "Classifier__FeaturesContainer",
            "Classifier__ShardQueue",
            "Classifier__SweepSchedule",
            "Classifier__ReviewIdentity",
            "Classifier__CustomVisionProjects",
            "Classifier__CustomVisionPredictionKeys",
        ];
        Assert.Equal(expected.Order(StringComparer.Ordinal), settings.Select(s => s.Key).Order(StringComparer.Ordinal));
        Assert.Equal("managedidentity", settings["ClassifierStorage__credential"]);
        Assert.Equal("Authorization=AAD", settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]);
        // The settings the host resolves itself (binding expressions) and the app requires.
        Assert.Equal("0 */5 * * * *", settings["Classifier__SweepSchedule"]);
        Assert.Equal("[parameters('imagesContainerName')]", settings["Classifier__ImagesContainer"]);
        // Who labels comes from App Service authentication, never Development (which the app refuses in Azure anyway).
        Assert.Equal("EasyAuth", settings["Classifier__ReviewIdentity"]);
        // The Custom Vision key: a Key Vault reference when a vault is named, else the secure parameter (never a literal).
        Assert.Equal("[parameters('customVisionProjects')]", settings["Classifier__CustomVisionProjects"]);
        Assert.Equal("[if(empty(parameters('customVisionKeyVaultName')), parameters('customVisionPredictionKeys'), format('@Microsoft.KeyVault(VaultName={0};SecretName={1})', parameters('customVisionKeyVaultName'), parameters('customVisionKeySecretName')))]",
            settings["Classifier__CustomVisionPredictionKeys"]);
        // No plain connection string for the host's storage: identity only.
        Assert.DoesNotContain("AzureWebJobsStorage", settings.Keys);
        foreach (var (name, value) in settings)
        {
            foreach (var secretMarker in new[] { "AccountKey", "SharedAccessSignature", "listKeys", "DefaultEndpointsProtocol", "sig=" })
            {
                Assert.DoesNotContain(secretMarker, name, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain(secretMarker, value, StringComparison.OrdinalIgnoreCase);
            }
        }
    }

    [Fact]
    public void FunctionApp_ModuleAssignsOnlyTheHostAccountRolesAndMetricsPublisher()
    {
        var template = Main.Module("functionApp").Template;
        Assert.Equal(
            new HashSet<string> { StorageBlobDataOwner, StorageQueueDataContributor, StorageTableDataContributor, MonitoringMetricsPublisher, KeyVaultSecretsUser },
            template.AssignedRoleIds());
        // Key Vault Secrets User only when a vault is named, and on the one secret the reference reads.
        var secretReader = template.OfType("Microsoft.Authorization/roleAssignments").Single(a => ((string?)a["properties"]!["description"])!.Contains("Custom Vision", StringComparison.Ordinal));
        Assert.Equal("[not(empty(parameters('customVisionKeyVaultName')))]", (string?)secretReader["condition"]);
        Assert.Equal("[resourceId('Microsoft.KeyVault/vaults/secrets', parameters('customVisionKeyVaultName'), parameters('customVisionKeySecretName'))]", (string?)secretReader["scope"]);
        // Every storage role in the module is on the host account, none on the data account.
        var storageScoped = template.OfType("Microsoft.Authorization/roleAssignments")
            .Where(a => ((string?)a["scope"])!.Contains("Microsoft.Storage", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, storageScoped.Count);
        Assert.All(storageScoped, a => Assert.Equal("[resourceId('Microsoft.Storage/storageAccounts', parameters('hostStorageAccountName'))]", (string?)a["scope"]));
    }

    [Fact]
    public void TrainJob_ModuleAssignsOnlyAcrPull_ItsStorageRolesArePerContainer()
    {
        Assert.Equal(new HashSet<string> { AcrPull }, Main.Module("trainJob").Template.AssignedRoleIds());
    }

    [Fact]
    public void Storage_ModuleAssignsNoRoles_TheOperatorIsOptional()
    {
        Assert.Empty(Main.Module("storage").Template.OfType("Microsoft.Authorization/roleAssignments"));
        Assert.Empty(Main.Module("hostStorage").Template.OfType("Microsoft.Authorization/roleAssignments"));
        Assert.Equal("[not(empty(parameters('operatorPrincipalId')))]", (string?)Main.Module("operatorDataRoles").Deployment["condition"]);
    }

    [Fact]
    public void Template_AssignsNoBroadRoles()
    {
        var allRoles = Main.SelfAndModules().SelectMany(template => template.AssignedRoleIds()).ToHashSet(StringComparer.OrdinalIgnoreCase);
        foreach (var module in new[] { "functionAppDataRoles", "trainJobDataRoles", "operatorDataRoles" })
        {
            allRoles.UnionWith(Main.Grants(module, "containerRoles").Select(g => g.RoleId));
            allRoles.UnionWith(Main.Grants(module, "queueRoles").Select(g => g.RoleId));
        }

        Assert.NotEmpty(allRoles);
        foreach (var broad in new[] { Owner, Contributor, UserAccessAdministrator, StorageAccountContributor })
        {
            Assert.DoesNotContain(broad, allRoles);
            Assert.DoesNotContain(broad, compiled.Json, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public void Registry_HasNoAdminUserOrAnonymousPull()
    {
        var registry = Main.Module("registry").Template.Single("Microsoft.ContainerRegistry/registries");

        Assert.False((bool?)registry["properties"]!["adminUserEnabled"]);
        Assert.False((bool?)registry["properties"]!["anonymousPullEnabled"]);
    }

    [Fact]
    public void TrainJob_RunsOnTheGpuProfileAndPullsByIdentity()
    {
        var module = Main.Module("trainJob").Template;
        var environment = module.Single("Microsoft.App/managedEnvironments");
        var job = module.Single("Microsoft.App/jobs");
        var configuration = job["properties"]!["configuration"]!;

        var profiles = environment["properties"]!["workloadProfiles"]!.AsArray();
        Assert.Contains(profiles, p => (string?)p!["workloadProfileType"] == "[parameters('gpuWorkloadProfileType')]");
        Assert.Equal("[parameters('gpuWorkloadProfileName')]", (string?)job["properties"]!["workloadProfileName"]);
        Assert.Equal("Manual", (string?)configuration["triggerType"]);
        Assert.Equal("UserAssigned", (string?)job["identity"]!["type"]);

        // The registry entry names the user-assigned identity; no password or secret anywhere.
        var registries = (string?)configuration["registries"] ?? configuration["registries"]!.ToJsonString();
        Assert.Contains("'identity', resourceId('Microsoft.ManagedIdentity/userAssignedIdentities'", registries, StringComparison.Ordinal);
        Assert.DoesNotContain("passwordSecretRef", job.ToJsonString(), StringComparison.Ordinal);
        Assert.Null(configuration["secrets"]);
        // The job waits for its AcrPull role before it is created.
        Assert.Contains(job["dependsOn"]!.AsArray(), d => (string?)d == "acrPull");
    }

    [Fact]
    public void TrainJob_HasTheEnvironmentContractAndTrainArguments()
    {
        var container = Assert.Single(Main.Module("trainJob").Template.Single("Microsoft.App/jobs")["properties"]!["template"]!["containers"]!.AsArray())!;
        var env = container["env"]!.AsArray().ToDictionary(e => (string)e!["name"]!, e => (string?)e!["value"]);

        string[] expected = ["AZURE_CLIENT_ID", "Classifier__FeaturesContainer", "Classifier__JobsContainer", "Classifier__ShardQueue", "ClassifierStorage__blobServiceUri", "ClassifierStorage__clientId",
            "ClassifierStorage__credential", "ClassifierStorage__queueServiceUri"];
        Assert.Equal(expected.Order(StringComparer.Ordinal), env.Keys.Order(StringComparer.Ordinal));
        Assert.Equal("managedidentity", env["ClassifierStorage__credential"]);
        Assert.Equal("[reference('identity').clientId]", env["AZURE_CLIENT_ID"]);
        Assert.Equal(env["AZURE_CLIENT_ID"], env["ClassifierStorage__clientId"]);
        Assert.All(container["env"]!.AsArray(), e => Assert.Null(e!["secretRef"]));

        var defaultArgs = Main.Root["parameters"]!["trainJobArgs"]!["defaultValue"]!.AsArray().Select(a => (string?)a);
        Assert.Equal(["train", "--data", "training", "--output", "/tmp/model", "--mode", "head", "--publish", "--device", "auto", "--checkpoints", "checkpoints/train"], defaultArgs);
    }

    [Fact]
    public void EventGridSubscription_IsItsOwnDeploymentThatLeavesTheSiteAlone()
    {
        // Not in the deployment that rewrites the site and its settings (the app restarts under the handshake).
        Assert.DoesNotContain("Microsoft.EventGrid/systemTopics/eventSubscriptions", compiled.Json, StringComparison.Ordinal);
        Assert.DoesNotContain("deployEventGridSubscription", compiled.Json, StringComparison.Ordinal);

        var (deployment, template) = compiled.EventGrid.Module("eventGridSubscription");
        var subscription = template.Single("Microsoft.EventGrid/systemTopics/eventSubscriptions")["properties"]!;
        // It writes the subscription and nothing else: the site and the topic are existing references.
        Assert.Equal(["Microsoft.EventGrid/systemTopics/eventSubscriptions"], template.Resources.Select(r => (string?)r["type"]));
        Assert.DoesNotContain(compiled.EventGrid.Resources, r => (string?)r["type"] != "Microsoft.Resources/deployments");

        Assert.Equal("ClassifyUploadedImageEventGrid", (string?)deployment["properties"]!["parameters"]!["functionName"]!["value"]);
        Assert.Equal(["Microsoft.Storage.BlobCreated"], subscription["filter"]!["includedEventTypes"]!.AsArray().Select(t => (string?)t));
        Assert.Contains("/blobServices/default/containers/{0}/", (string?)subscription["filter"]!["subjectBeginsWith"], StringComparison.Ordinal);
        var endpoint = (string?)subscription["destination"]!["properties"]!["endpointUrl"] ?? "";
        Assert.Contains("/runtime/webhooks/blobs?functionName=Host.Functions.{1}&code={2}", endpoint, StringComparison.Ordinal);
        Assert.Contains(".systemKeys.blobs_extension", endpoint, StringComparison.Ordinal);
        foreach (var output in compiled.EventGrid.Root["outputs"]!.AsObject())
        {
            Assert.DoesNotContain("listKeys", output.Value!.ToJsonString(), StringComparison.OrdinalIgnoreCase);
        }

        // The main deployment hands the step what it needs.
        foreach (var name in new[] { "FUNCTION_APP_NAME", "EVENT_GRID_SYSTEM_TOPIC_NAME", "IMAGES_CONTAINER_NAME" })
        {
            Assert.NotNull(Main.Root["outputs"]![name]);
        }
        var topic = Main.Module("eventGridTopic").Template.Single("Microsoft.EventGrid/systemTopics");
        Assert.Equal("Microsoft.Storage.StorageAccounts", (string?)topic["properties"]!["topicType"]);
    }

    [Fact]
    public void Registry_TierIsAParameterThatDefaultsToBasic()
    {
        var parameter = Main.Root["parameters"]!["containerRegistrySku"]!;
        Assert.Equal("Basic", (string?)parameter["defaultValue"]);
        Assert.Contains("Premium", parameter["allowedValues"]!.AsArray().Select(v => (string?)v));
        Assert.Equal("[parameters('containerRegistrySku')]", (string?)Main.Module("registry").Deployment["properties"]!["parameters"]!["skuName"]!["value"]);
    }

    [Fact]
    public void PrivateNetworking_IsAParameterOffByDefault_ThatPutsBothAccountsBehindPrivateEndpointsAndTheAppAndJobInTheVNet()
    {
        const string On = "parameters('privateNetworking')";
        Assert.False((bool)Main.Root["parameters"]!["privateNetworking"]!["defaultValue"]!);
        string? Parameter(string module, string name) => Main.Module(module).Deployment["properties"]!["parameters"]![name]?.ToJsonString(Relaxed);

        // The VNet and both accounts' endpoints exist only when asked for.
        foreach (var module in new[] { "network", "storagePrivateEndpoints", "hostStoragePrivateEndpoints" })
        {
            Assert.Equal($"[{On}]", (string?)Main.Module(module).Deployment["condition"]);
        }
        Assert.Contains("storageAccountName')", Parameter("storagePrivateEndpoints", "storageAccountName"), StringComparison.Ordinal);
        Assert.Contains("hostStorageAccountName')", Parameter("hostStoragePrivateEndpoints", "storageAccountName"), StringComparison.Ordinal);
        // Each account's public endpoint is disabled with it (the data account lets the operator's addresses through).
        foreach (var account in new[] { "storage", "hostStorage" })
        {
            Assert.Equal($"\"[if({On}, createObject('value', 'Disabled'), createObject('value', 'Enabled'))]\"", Parameter(account, "publicNetworkAccess"));
        }
        Assert.Contains("operatorIpRanges", Parameter("storage", "allowedIpRanges"), StringComparison.Ordinal);
        Assert.Null(Parameter("hostStorage", "allowedIpRanges"));
        Assert.Contains("Deny", Main.Module("storage").Template.Single("Microsoft.Storage/storageAccounts")["properties"]!["networkAcls"]!["defaultAction"]!.ToJsonString(Relaxed), StringComparison.Ordinal);

        // blob, queue and table, each with its privatelink zone linked to the VNet.
        var network = Main.Module("network").Template;
        Assert.Equal(["blob", "queue", "table"], network.Root["variables"]!["storageServices"]!.AsArray().Select(v => (string?)v));
        Assert.Contains("privatelink.{0}.{1}", (string?)network.Single("Microsoft.Network/privateDnsZones")["name"], StringComparison.Ordinal);
        Assert.Single(network.OfType("Microsoft.Network/privateDnsZones/virtualNetworkLinks"));
        var endpoints = Main.Module("storagePrivateEndpoints").Template;
        Assert.Contains("parameters('services')", endpoints.Single("Microsoft.Network/privateEndpoints")["properties"]!.ToJsonString(Relaxed), StringComparison.Ordinal);
        Assert.Single(endpoints.OfType("Microsoft.Network/privateEndpoints/privateDnsZoneGroups"));

        // The app and the job's environment join the VNet on delegated subnets.
        var subnets = network.Single("Microsoft.Network/virtualNetworks")["properties"]!["subnets"]!.AsArray();
        foreach (var delegated in new[] { "snet-functions", "snet-jobs" })
        {
            var subnet = subnets.Single(s => network.Resolve((string?)s!["name"]) == delegated)!;
            Assert.Equal("Microsoft.App/environments", (string?)subnet["properties"]!["delegations"]![0]!["properties"]!["serviceName"]);
        }
        Assert.Contains(On, Parameter("functionApp", "virtualNetworkSubnetId"), StringComparison.Ordinal);
        Assert.Contains("virtualNetworkSubnetId", Main.Module("functionApp").Template.Single("Microsoft.Web/sites")["properties"]!["virtualNetworkSubnetId"]!.ToJsonString(Relaxed), StringComparison.Ordinal);
        Assert.Contains(On, Parameter("trainJob", "infrastructureSubnetId"), StringComparison.Ordinal);
        var vnetConfiguration = Main.Module("trainJob").Template.Single("Microsoft.App/managedEnvironments")["properties"]!["vnetConfiguration"]!.ToJsonString(Relaxed);
        Assert.Contains("infrastructureSubnetId", vnetConfiguration, StringComparison.Ordinal);
    }

    [Fact]
    public void Outputs_CarryNoSecrets()
    {
        foreach (var template in Main.SelfAndModules())
        {
            foreach (var (name, output) in template.Root["outputs"]?.AsObject() ?? [])
            {
                var text = output!.ToJsonString();
                Assert.DoesNotContain("listKeys", text, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("ConnectionString", text, StringComparison.OrdinalIgnoreCase);
                Assert.DoesNotContain("secure", (string?)output["type"] ?? "", StringComparison.OrdinalIgnoreCase);
                Assert.False(string.IsNullOrEmpty(name));
            }
        }
    }

    [Fact]
    public void FunctionApp_ReviewSignIn_IsEntraIdAppServiceAuthentication_ThatLeavesKeyedRoutesOpen_AndHasNoSecret()
    {
        var functionApp = Main.Module("functionApp");
        var auth = Assert.Single(functionApp.Template.OfType("Microsoft.Web/sites/config"), c => ((string?)c["name"])!.Contains("authsettingsV2", StringComparison.Ordinal));
        // Deployed only when an app registration is named; the parameter reaches the module from main.bicep.
        Assert.Equal("[not(empty(parameters('reviewSignInClientId')))]", (string?)auth["condition"]);
        Assert.Equal("[parameters('reviewSignInClientId')]", (string?)functionApp.Deployment["properties"]!["parameters"]!["reviewSignInClientId"]!["value"]);
        var properties = auth["properties"]!;
        Assert.True((bool)properties["platform"]!["enabled"]!);
        // Anonymous requests reach the host (keys still checked): classify, health and Event Grid's webhook need no sign-in.
        Assert.False((bool)properties["globalValidation"]!["requireAuthentication"]!);
        Assert.Equal("AllowAnonymous", (string?)properties["globalValidation"]!["unauthenticatedClientAction"]);
        var entra = properties["identityProviders"]!["azureActiveDirectory"]!;
        Assert.True((bool)entra["enabled"]!);
        Assert.Equal("[parameters('reviewSignInClientId')]", (string?)entra["registration"]!["clientId"]);
        Assert.Contains("tenant().tenantId", (string?)entra["registration"]!["openIdIssuer"], StringComparison.Ordinal);
        Assert.Null(entra["registration"]!["clientSecretSettingName"]);
        Assert.True((bool)properties["httpSettings"]!["requireHttps"]!);
    }

    private List<string?> ModuleArray(string module, string parameter) =>
        Main.Module(module).Deployment["properties"]!["parameters"]![parameter]!["value"]!.AsArray().Select(name => Main.Resolve((string?)name)).ToList();

    private Dictionary<string, string> AppSettings()
    {
        var config = Assert.Single(Main.Module("functionApp").Template.OfType("Microsoft.Web/sites/config"), c => ((string?)c["name"])!.Contains("appsettings", StringComparison.Ordinal));
        return config["properties"]!.AsObject().ToDictionary(p => p.Key, p => p.Value is JsonValue v ? v.ToString() : p.Value!.ToJsonString());
    }
}
