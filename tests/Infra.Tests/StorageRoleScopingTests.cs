namespace ServerlessClassifier.Infra.Tests;

/// <summary>
/// Least privilege on storage: the Functions host's storage is its own account, and every data-plane role on the data
/// account is scoped to the one container or queue it is for, with the least role the code's use of it needs
/// (docs/deploy.md, "Who may touch what").
/// </summary>
public sealed class StorageRoleScopingTests(CompiledTemplateFixture compiled) : IClassFixture<CompiledTemplateFixture>
{
    private const string BlobReader = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
    private const string BlobContributor = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
    private const string BlobOwner = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b";
    private const string QueueReader = "19e7f393-937e-4f77-808e-94535e297925";
    private const string QueueProcessor = "8a0f0c08-91a1-4084-bc3d-661d67233fed";
    private const string QueueSender = "c6a89b2d-59bc-44d0-9896-0f6e12d7b80a";
    private const string BlobDelegator = "db58b8e5-c6ad-4a2a-8342-4190687cbf4a";

    private static readonly string[] RoleModules = ["functionAppDataRoles", "trainJobDataRoles", "operatorDataRoles"];

    private ArmTemplate Main => compiled.Main;

    [Fact]
    public void DataRoles_EveryAssignmentIsScopedToOneContainerOrOneQueue_NeverTheAccount()
    {
        foreach (var name in RoleModules)
        {
            var (deployment, template) = Main.Module(name);
            // On the data account, not the host's.
            Assert.Equal("[variables('storageAccountName')]", (string?)deployment["properties"]!["parameters"]!["storageAccountName"]!["value"]);
            var assignments = template.OfType("Microsoft.Authorization/roleAssignments").Where(a => a["copy"] is not null).ToList();
            Assert.Equal(2, assignments.Count);
            Assert.Equal(
                "[resourceId('Microsoft.Storage/storageAccounts/blobServices/containers', parameters('storageAccountName'), 'default', parameters('containerRoles')[copyIndex()].container)]",
                (string?)assignments.Single(a => a["copy"]!["name"]!.GetValue<string>() == "containerAssignments")["scope"]);
            Assert.Equal(
                "[resourceId('Microsoft.Storage/storageAccounts/queueServices/queues', parameters('storageAccountName'), 'default', parameters('queueRoles')[copyIndex()].queue)]",
                (string?)assignments.Single(a => a["copy"]!["name"]!.GetValue<string>() == "queueAssignments")["scope"]);
        }
    }

    [Fact]
    public void DataAccount_NoAssignmentAnywhereIsScopedToAWholeStorageAccount_ExceptTheHostAccount()
    {
        foreach (var template in Main.SelfAndModules())
        {
            foreach (var assignment in template.OfType("Microsoft.Authorization/roleAssignments"))
            {
                var scope = (string?)assignment["scope"] ?? "";
                if (scope.Contains("'Microsoft.Storage/storageAccounts'", StringComparison.Ordinal) && !IsDelegator(assignment))
                {
                    Assert.Equal("[resourceId('Microsoft.Storage/storageAccounts', parameters('hostStorageAccountName'))]", scope);
                }
            }
        }
        Assert.Equal("[variables('hostStorageAccountName')]", (string?)Main.Module("functionApp").Deployment["properties"]!["parameters"]!["hostStorageAccountName"]!["value"]);
    }

    [Fact]
    public void FunctionApp_ReadsUploadsAndModels_WritesOnlyWhatItsCodeWrites()
    {
        Assert.Equal(
            [
                ("images", BlobReader), ("models", BlobReader), ("predictions", BlobContributor), ("review", BlobContributor),
                ("training", BlobContributor), ("training-models", BlobContributor), ("jobs", BlobContributor), ("features", BlobContributor),
            ],
            Main.Grants("functionAppDataRoles", "containerRoles"));
        Assert.Equal(
            [
                ("classify-shards", QueueReader), ("classify-shards", QueueProcessor),
                ("classify-shards-poison", QueueSender), ("webjobs-blobtrigger-poison", QueueSender),
            ],
            Main.Grants("functionAppDataRoles", "queueRoles"));
        var parameters = Main.Module("functionAppDataRoles").Deployment["properties"]!["parameters"]!;
        Assert.Equal("[reference('functionApp').outputs.principalId.value]", (string?)parameters["principalId"]!["value"]);
    }

    [Fact]
    public void TrainJob_ReadsTheData_WritesModelsFeaturesCheckpointsAndJobs_SendsShards()
    {
        Assert.Equal(
            [
                ("training", BlobReader), ("training-models", BlobReader), ("images", BlobReader), ("predictions", BlobReader),
                ("models", BlobContributor), ("features", BlobContributor), ("checkpoints", BlobContributor), ("jobs", BlobContributor),
            ],
            Main.Grants("trainJobDataRoles", "containerRoles"));
        Assert.Equal([("classify-shards", QueueSender)], Main.Grants("trainJobDataRoles", "queueRoles"));
        var parameters = Main.Module("trainJobDataRoles").Deployment["properties"]!["parameters"]!;
        Assert.Equal("[reference('trainJob').outputs.identityPrincipalId.value]", (string?)parameters["principalId"]!["value"]);
    }

    [Fact]
    public void Operator_IsOptional_AndScopedToTheContainersOfTheOperatorsWork()
    {
        var (deployment, _) = Main.Module("operatorDataRoles");
        Assert.Equal("[not(empty(parameters('operatorPrincipalId')))]", (string?)deployment["condition"]);
        Assert.Equal(
            [
                ("images", BlobContributor), ("training", BlobContributor), ("training-models", BlobContributor), ("review", BlobContributor), ("models", BlobContributor),
                ("predictions", BlobReader), ("jobs", BlobReader),
            ],
            Main.Grants("operatorDataRoles", "containerRoles"));
        Assert.Empty(Main.Grants("operatorDataRoles", "queueRoles"));
    }

    [Fact]
    public void DataAccount_TheOnlyAccountWideRoleIsTheOperatorsDelegator_WhichGrantsNoData()
    {
        foreach (var name in RoleModules)
        {
            var (deployment, template) = Main.Module(name);
            var delegator = Assert.Single(template.OfType("Microsoft.Authorization/roleAssignments"), a => a["copy"] is null);
            Assert.True(IsDelegator(delegator));
            Assert.Equal("[parameters('delegator')]", (string?)delegator["condition"]);
            Assert.Equal("[resourceId('Microsoft.Storage/storageAccounts', parameters('storageAccountName'))]", (string?)delegator["scope"]);
            Assert.Equal(name == "operatorDataRoles", (bool?)deployment["properties"]!["parameters"]!["delegator"]?["value"] ?? false);
        }
    }

    [Fact]
    public void DataRoles_NameOnlyContainersAndQueuesTheTemplateCreates_AndNeverGrantOwner()
    {
        var parameters = Main.Module("storage").Deployment["properties"]!["parameters"]!;
        var containers = parameters["containerNames"]!["value"]!.AsArray().Select(n => Main.Resolve((string?)n)).ToHashSet();
        var queues = parameters["queueNames"]!["value"]!.AsArray().Select(n => Main.Resolve((string?)n)).ToHashSet();
        foreach (var name in RoleModules)
        {
            Assert.All(Main.Grants(name, "containerRoles"), g => Assert.Contains(g.Target, containers));
            Assert.All(Main.Grants(name, "queueRoles"), g => Assert.Contains(g.Target, queues));
            Assert.All(Main.Grants(name, "containerRoles"), g => Assert.NotEqual(BlobOwner, g.RoleId));
        }
    }

    [Fact]
    public void FunctionApp_HostSettingsNameTheHostAccount_ClassifierSettingsTheDataAccount()
    {
        var module = Main.Module("functionApp");
        var config = Assert.Single(module.Template.OfType("Microsoft.Web/sites/config"), c => ((string?)c["name"])!.Contains("appsettings", StringComparison.Ordinal));
        var settings = config["properties"]!.AsObject();
        Assert.Equal("[parameters('hostStorageAccountName')]", (string?)settings["AzureWebJobsStorage__accountName"]);
        Assert.StartsWith("[reference('dataStorage').primaryEndpoints.blob", (string?)settings["ClassifierStorage__blobServiceUri"], StringComparison.Ordinal);
        Assert.StartsWith("[reference('dataStorage').primaryEndpoints.queue", (string?)settings["ClassifierStorage__queueServiceUri"], StringComparison.Ordinal);
        var site = module.Template.Single("Microsoft.Web/sites");
        Assert.Contains("reference('hostStorage').primaryEndpoints.blob", (string?)site["properties"]!["functionAppConfig"]!["deployment"]!["storage"]!["value"], StringComparison.Ordinal);
        // The existing references behind those names are the two accounts the module is given.
        var references = module.Template.Root["resources"]!.AsObject();
        Assert.Equal("[parameters('hostStorageAccountName')]", (string?)references["hostStorage"]!["name"]);
        Assert.Equal("[parameters('dataStorageAccountName')]", (string?)references["dataStorage"]!["name"]);

        Assert.Equal("[variables('storageAccountName')]", (string?)module.Deployment["properties"]!["parameters"]!["dataStorageAccountName"]!["value"]);
        Assert.NotEqual(Main.Resolve("[variables('storageAccountName')]"), Main.Resolve("[variables('hostStorageAccountName')]"));
        // The job and the Event Grid topic are on the data account.
        Assert.Equal("[variables('storageAccountName')]", (string?)Main.Module("trainJob").Deployment["properties"]!["parameters"]!["storageAccountName"]!["value"]);
        Assert.Equal("[variables('storageAccountName')]", (string?)Main.Module("eventGridTopic").Deployment["properties"]!["parameters"]!["storageAccountName"]!["value"]);
        Assert.NotNull(Main.Root["outputs"]!["HOST_STORAGE_ACCOUNT_NAME"]);
        Assert.NotNull(Main.Root["outputs"]!["STORAGE_ACCOUNT_NAME"]);
    }

    private static bool IsDelegator(System.Text.Json.Nodes.JsonObject assignment) =>
        ((string?)assignment["properties"]!["roleDefinitionId"])!.Contains("variables('storageBlobDelegatorRoleId')", StringComparison.Ordinal);
}
